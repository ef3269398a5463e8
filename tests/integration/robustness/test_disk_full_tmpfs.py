"""Issue 10, case 8, on a real full filesystem: ``anabranch standalone`` with its data directory on a 48 MiB tmpfs
that a filler file then fills. A write gets an ErrorMessage that says the disk is full (and closes that
connection so every client retries), reads keep working, no container fails, writes resume by themselves once
the filler is deleted, and after a restart every acknowledged event is there and no refused one is.

Needs ``mount -t tmpfs`` (root); skipped otherwise. The same seam without a real filesystem is tested in
tests/unit/robustness/test_disk_full.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from robustness_helpers import acked, append, connect, event, probe_every_container, read_all

from anabranch.client import StreamManager
from anabranch.client.connection import next_request_id
from anabranch.protocol.commands import CreateSegment, ErrorMessage, SegmentCreated
from anabranch.testing.faults import fill_disk, small_filesystem
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process
SEGMENT = "full/s/0.#epoch.0"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / "disk") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        yield tmp_path / "disk"



async def test_disk_full_refuses_writes_keeps_reads_and_recovers(small_disk: Path, tmp_path: Path) -> None:
    server = Standalone(small_disk / "data")
    server.log_path = tmp_path / "server.log"  # off the full disk
    server.start()
    try:
        async with StreamManager(server.controller_uri) as manager:
            assert await manager.create_scope("full")
        port = server.segmentstore_port
        conn = await connect(port)
        assert isinstance(await conn.request(CreateSegment(next_request_id(), SEGMENT)), SegmentCreated)
        assert acked(await append(conn, SEGMENT, [b"before-1", b"before-2"]))
        await conn.close()

        filler = small_disk / "filler"
        assert fill_disk(filler) > 0
        conn = await connect(port)
        refused = await append(conn, SEGMENT, [b"refused" * 40_000])  # more than the last page's free room
        assert isinstance(refused, ErrorMessage), refused
        assert "disk full" in refused.message and "no space left" in refused.message, refused.message
        assert refused.error_code == ErrorMessage.UNSPECIFIED
        await conn.close()
        conn = await connect(port)
        assert await read_all(conn, SEGMENT) == event(b"before-1") + event(b"before-2")
        await conn.close()

        filler.unlink()
        conn = await connect(port)
        assert acked(await append(conn, SEGMENT, [b"after"]))
        await conn.close()
        await probe_every_container(port, "freed")
        async with StreamManager(server.controller_uri) as manager:
            assert await manager.create_stream("full", "again")
        assert "durable log failed" not in server.log_text()

        server.restart(timeout=60)
        conn = await connect(port)
        assert await read_all(conn, SEGMENT) == event(b"before-1") + event(b"before-2") + event(b"after")
        await conn.close()
    finally:
        server.kill()
