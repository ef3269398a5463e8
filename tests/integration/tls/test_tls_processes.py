"""TLS through real processes: ``standalone``, ``segmentstore`` + ``controller`` started with --tls-cert/--tls-key,
reached by Anabranch's client, its command line and the TLS example of docs/client.md; plaintext clients fail
cleanly within a bounded time."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from anabranch.client.config import ClientConfig, ScalingPolicy, StreamConfiguration
from anabranch.client.connection import RawConnection
from anabranch.client.errors import ControllerUnavailableError
from anabranch.client.reader_group import ReaderGroupConfig
from anabranch.client.stream_manager import StreamManager
from anabranch.errors import ConnectionFailedError
from anabranch.testing.processes import HOST, ServerProcess, Standalone, free_port
from tests.unit.tls.certs import Pki, make_pki

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]
DOC = Path(__file__).resolve().parents[3] / "docs" / "client.md"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_args(pki: Pki) -> list[str]:
    return ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]


@pytest.fixture(scope="module")
def tls_standalone(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Standalone]:
    server = Standalone(tmp_path_factory.mktemp("tls") / "data", None, None, *tls_args(pki), "--admin-port", "0")
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def round_trip(config: ClientConfig, count: int) -> list[str]:
    """Create a scope and a 2-segment stream, write ``count`` keyed events, read them all back."""
    scope = f"tls-{uuid.uuid4().hex[:8]}"
    async with StreamManager(config) as manager:
        assert await manager.create_scope(scope) is True
        await manager.create_stream(scope, "s", StreamConfiguration(ScalingPolicy.fixed(2)))
        writer = manager.create_writer(scope, "s")
        for i in range(count):
            await writer.write_event(f"e{i}", routing_key=f"k{i % 5}")
        await writer.flush()
        group = await manager.create_reader_group(scope, "g", ReaderGroupConfig.for_streams(scope, "s"))
        reader = await group.create_reader("r1")
        seen: list[str] = []

        async def read_all() -> None:
            while len(seen) < count:
                read = await reader.read_next_event(timeout=1)
                if read.event is not None:
                    seen.append(bytes(read.event).decode())

        await asyncio.wait_for(read_all(), 30)
        await reader.close()
    return seen


async def test_client_writes_and_reads_over_tls(tls_standalone: Standalone, pki: Pki) -> None:
    config = ClientConfig(f"tls://{HOST}:{tls_standalone.controller_port}", trust_store=str(pki.ca_dir))
    seen = await round_trip(config, 200)
    assert sorted(seen) == sorted(f"e{i}" for i in range(200))
    assert "(TLS)" in tls_standalone.log_text()


async def test_plaintext_clients_fail_cleanly(tls_standalone: Standalone) -> None:
    config = ClientConfig(tls_standalone.controller_uri, retry_attempts=2, request_timeout=3)
    async with StreamManager(config) as manager:
        with pytest.raises(ControllerUnavailableError):
            await asyncio.wait_for(manager.create_scope("plain"), 30)
    with pytest.raises(ConnectionFailedError):
        await RawConnection.connect(HOST, tls_standalone.segmentstore_port, timeout=5)


async def test_untrusting_client_fails_cleanly(tls_standalone: Standalone, tmp_path: Path) -> None:
    stranger = make_pki(tmp_path / "stranger")
    config = ClientConfig(f"tls://{HOST}:{tls_standalone.controller_port}", trust_store=str(stranger.ca_cert),
                          retry_attempts=2, request_timeout=3)
    async with StreamManager(config) as manager:
        with pytest.raises(ControllerUnavailableError):
            await asyncio.wait_for(manager.create_scope("untrusted"), 30)


async def test_separate_segmentstore_and_controller_over_tls(tmp_path: Path, pki: Pki) -> None:
    key = ["--token-signing-key-file", str(tmp_path / "signing.key")]
    store = ServerProcess(["segmentstore", "--data-dir", str(tmp_path / "ss"), "--host", HOST, "--port",
                           str(ss_port := free_port()), "--containers", "2", *tls_args(pki), *key],
                          [ss_port], tmp_path / "ss")
    controller = ServerProcess(["controller", "--segmentstore", f"{HOST}:{ss_port}", "--host", HOST, "--port",
                                str(port := free_port()), "--admin-port", "0", *tls_args(pki), *key,
                                "--segmentstore-trust-store", str(pki.ca_cert)],
                               [port], tmp_path / "controller")
    with store, controller:
        seen = await round_trip(ClientConfig(f"tls://localhost:{port}", trust_store=str(pki.ca_cert)), 20)
        assert sorted(seen) == sorted(f"e{i}" for i in range(20))


def test_cli_uses_the_official_clients_trust_variable(tls_standalone: Standalone, pki: Pki) -> None:
    env = dict(os.environ, pravega_client_tls_cert_path=str(pki.ca_dir))
    scope = f"cli-{uuid.uuid4().hex[:8]}"
    done = subprocess.run([sys.executable, "-m", "anabranch", "scope", "create", scope, "--controller",
                           f"tls://{HOST}:{tls_standalone.controller_port}"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr


def test_docs_tls_example_runs(tls_standalone: Standalone, pki: Pki, tmp_path: Path) -> None:
    examples = re.findall(r"```python tls\n(.*?)```", DOC.read_text(), re.S)
    assert examples, "docs/client.md has no ```python tls example"
    for index, code in enumerate(examples):
        code = code.replace("tls://127.0.0.1:9090", f"tls://{HOST}:{tls_standalone.controller_port}")
        code = code.replace("certs/ca.pem", str(pki.ca_cert))
        script = tmp_path / f"tls_example_{index}.py"
        script.write_text(code)
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, f"TLS example {index} failed:\n{code}\n{done.stdout}\n{done.stderr}"
