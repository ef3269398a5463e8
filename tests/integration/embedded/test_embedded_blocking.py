"""The blocking form of the embedded standalone: its event loop runs in a background thread, so blocking code (the
official ``pravega`` client, a plain script, a synchronous test) talks to it; stop ends the thread."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from anabranch.client import ReaderGroupConfig
from anabranch.embedded import BlockingStandalone, Standalone
from anabranch.testing.assertions import assert_exactly_once, assert_per_key_order


async def read_all(server: Standalone, scope: str, stream: str, count: int) -> list[bytes]:
    group = await server.manager.create_reader_group(scope, "rg-" + uuid.uuid4().hex[:6],
                                                     ReaderGroupConfig.for_streams(scope, stream))
    reader = await group.create_reader("r1")
    got: list[bytes] = []
    for _ in range(count * 5):
        if len(got) == count:
            break
        read = await reader.read_next_event(timeout=1.0)
        if read.event is not None:
            got.append(read.event)
    await reader.close()
    return got


OFFICIAL_APP = """
import sys
import pravega_client

manager = pravega_client.StreamManager(sys.argv[1])
assert manager.create_scope("shop")
assert manager.create_stream("shop", "orders", 2)
writer = manager.create_writer("shop", "orders")
for i in range(30):
    writer.write_event(f"c{i % 3}:{i}", routing_key=f"c{i % 3}")
writer.flush()
print("written")
"""


@pytest.mark.compat
def test_an_official_client_application_against_a_blocking_embedded_server() -> None:
    """The official client holds the GIL while its calls block, so it cannot share a process with a server whose loop
    runs in a thread: the application runs in its own interpreter, the server in the test's."""
    pytest.importorskip("pravega_client")
    with Standalone.blocking(containers=2) as server:
        done = subprocess.run([sys.executable, "-c", OFFICIAL_APP, server.controller_uri], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0 and "written" in done.stdout, done.stderr[-3000:]
        sent = [f"c{i % 3}:{i}" for i in range(30)]
        got = [e.decode() for e in server.run(read_all(server.server, "shop", "orders", len(sent)))]
        assert_exactly_once(sent, got)
        assert_per_key_order(got, key=lambda e: e.split(":")[0], written=sent)


def test_blocking_helpers_restart_and_a_clean_stop(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    server = BlockingStandalone(tmp_path / "data", containers=1)
    with server:
        assert any(t.name == "anabranch-embedded" for t in threading.enumerate())
        assert server.create_scope("s") is True
        server.create_stream("s", "t", segments=2)
        uri = server.controller_uri
        server.restart()
        assert server.controller_uri == uri
        assert server.create_scope("s") is False, "the scope did not survive the restart"
    assert not any(t.name == "anabranch-embedded" for t in threading.enumerate())
    assert {t for t in set(threading.enumerate()) - before if not t.daemon} == set()
    with pytest.raises(RuntimeError, match="not running"):
        server.create_scope("again")
