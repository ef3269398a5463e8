"""Server processes: one server per data directory (issue 10, case 10), one-line start-up errors with exit code
1 and no traceback for ``standalone``, ``segmentstore`` and ``controller``, and ``/ready`` failing with the reason
when the controller loses its segment store. A refused second server runs as a real process; the other start-up
errors run the same command in this process (``CliRunner``), which is what the process would run, minus the
interpreter start (seconds each on a busy machine)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from anabranch.cli.main import cli
from anabranch.cli.standalone import STANDALONE_CONTAINERS
from anabranch.client import ReaderGroupConfig, StreamManager, StringSerializer
from anabranch.testing.processes import HOST, SegmentStoreProcess, ServerProcess, Standalone, free_port, wait_for_port

pytestmark = pytest.mark.process
TIMEOUT = 30.0


def run_process(*args: str) -> tuple[int, str]:
    """Run ``anabranch ARGS`` as a process: (exit code, stderr)."""
    done = subprocess.run([sys.executable, "-m", "anabranch", "--log-level", "WARNING", *args],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr


def run_cli(*args: str) -> tuple[int, str]:
    """Run the same command in this process: (exit code, stderr)."""
    result = CliRunner().invoke(cli, ["--log-level", "WARNING", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


def one_line_error(result: tuple[int, str]) -> str:
    """The command failed with exit code 1 and exactly one line on stderr, without a traceback."""
    code, stderr = result
    assert code == 1, (code, stderr)
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def _write(uri: str, scope: str, stream: str, event: str) -> None:
    async with StreamManager(uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream)
        writer = manager.create_writer(scope, stream)
        await writer.write_event(event)
        await writer.flush()
        await writer.close()


async def _read_one(uri: str, scope: str, stream: str) -> str | None:
    async with StreamManager(uri) as manager:
        group = await manager.create_reader_group(scope, "g", ReaderGroupConfig.for_streams(scope, stream))
        reader = await group.create_reader("r", StringSerializer())
        deadline = time.monotonic() + TIMEOUT
        try:
            while time.monotonic() < deadline:
                read = await reader.read_next_event(timeout=2)
                if read.event is not None:
                    return str(read.event)
            return None
        finally:
            await reader.close()


def test_second_server_on_a_data_directory_refuses_and_names_the_holder(tmp_path: Path) -> None:
    first = Standalone(tmp_path / "data", None, None, "--admin-port", "0")
    with first:
        asyncio.run(_write(first.controller_uri, "lock", "s", "acknowledged"))
        second = run_process("standalone", "--data-dir", str(first.data_dir), "--controller-port", str(free_port()),
                         "--segmentstore-port", str(free_port()), "--admin-port", "0")
        line = one_line_error(second)
        assert f"pid {first.pid}" in line and f"{HOST}:{first.segmentstore_port}" in line, line
        assert f"{HOST}:{first.controller_port}" in line and "in use" in line
        store = run_cli("segmentstore", "--data-dir", str(first.data_dir), "--port", str(free_port()))
        assert f"pid {first.pid}" in one_line_error(store)
        assert first.process is not None and first.process.poll() is None
        first.kill()  # kill -9 leaves the lock file but not the lock: the same server starts again
        assert (first.data_dir / "anabranch.lock").exists()
        first.start()
        assert asyncio.run(_read_one(first.controller_uri, "lock", "s")) == "acknowledged"


def test_the_container_count_stays_with_the_data_directory(tmp_path: Path) -> None:
    server = Standalone(tmp_path / "data", None, None, "--admin-port", "0", "--containers", "4")
    with server:
        asyncio.run(_write(server.controller_uri, "count", "s", "in one of four containers"))
    record = server.data_dir / "containers"
    assert record.read_text() == "4\n"
    line = one_line_error(run_cli("standalone", "--data-dir", str(server.data_dir), "--containers", "1",
                                  "--controller-port", str(free_port()), "--segmentstore-port", str(free_port()),
                                  "--admin-port", "0"))
    assert "holds 4 segment containers; --containers 1" in line, line
    record.unlink()  # as in a directory from before the record: its Tier-1 logs give the count
    again = Standalone(server.data_dir, None, None, "--admin-port", "0")
    with again:
        assert asyncio.run(_read_one(again.controller_uri, "count", "s")) == "in one of four containers"
    assert record.read_text() == "4\n"
    fresh = Standalone(tmp_path / "fresh", None, None, "--admin-port", "0")
    with fresh:
        assert (fresh.data_dir / "containers").read_text() == f"{STANDALONE_CONTAINERS}\n"
        assert sorted(path.name for path in (fresh.data_dir / "tier1").iterdir()) == [
            str(n) for n in range(STANDALONE_CONTAINERS)]


@pytest.mark.parametrize("which", ["segmentstore-port", "controller-port"])
def test_standalone_port_in_use(tmp_path: Path, listening: int, which: str) -> None:
    ports = {"segmentstore-port": free_port(), "controller-port": free_port(), which: listening}
    line = one_line_error(run_cli("standalone", "--data-dir", str(tmp_path / "d"), "--admin-port", "0",
                                  *(f"--{k}={v}" for k, v in ports.items())))
    assert f"cannot listen on {HOST}:{listening}" in line and "in use" in line


def test_segmentstore_and_controller_port_in_use(tmp_path: Path, listening: int) -> None:
    line = one_line_error(run_cli("segmentstore", "--data-dir", str(tmp_path / "d"), "--port", str(listening)))
    assert f"segment store cannot listen on {HOST}:{listening}" in line
    line = one_line_error(run_cli("controller", "--segmentstore", f"{HOST}:1", "--port", str(listening),
                                  "--admin-port", "0", "--token-signing-key-file", str(tmp_path / "key")))
    assert f"controller cannot listen on {HOST}:{listening}" in line


@pytest.mark.parametrize("command", ["standalone", "segmentstore"])
def test_unusable_data_directories(tmp_path: Path, command: str) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    assert "is not a directory" in one_line_error(run_cli(command, "--data-dir", str(a_file)))
    under_a_file = one_line_error(run_cli(command, "--data-dir", str(a_file / "data")))
    assert "cannot create data directory" in under_a_file


def _ready(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_ready_fails_with_the_reason_when_the_segment_store_is_gone(tmp_path: Path) -> None:
    key = ["--token-signing-key-file", str(tmp_path / "signing.key")]
    store = SegmentStoreProcess(tmp_path / "data", None, *key)
    port, admin = free_port(), free_port()
    controller = ServerProcess(["controller", "--segmentstore", f"{HOST}:{store.segmentstore_port}", "--host", HOST,
                                "--port", str(port), "--admin-port", str(admin), *key], [port], tmp_path / "ctl")
    with store, controller:
        wait_for_port(HOST, admin, TIMEOUT, controller.process)
        status, body = _ready(f"http://{HOST}:{admin}/ready")
        assert status == 200 and body["ready"] is True
        store.kill()
        status, body = _ready(f"http://{HOST}:{admin}/ready")
        assert status == 503 and body["ready"] is False
        reasons = body["reasons"]
        assert isinstance(reasons, list) and any("metadata" in str(r) for r in reasons), body
        status, health = _ready(f"http://{HOST}:{admin}/health")
        assert status == 200 and health == {"status": "ok"}


@pytest.mark.parametrize(("args", "message"), [
    (["standalone", "--tls-cert", "/etc/hostname"], "needs both --tls-cert and --tls-key"),
    (["standalone", "--lts-s3-endpoint", "http://127.0.0.1:1"], "--lts-s3-endpoint needs --lts-s3-bucket"),
    (["segmentstore", "--tier1", "nats://127.0.0.1:1"], "only make sense with --zookeeper"),
    (["controller", "--port", "0"], "give either --segmentstore"),
])
def test_flags_that_do_not_go_together(args: list[str], message: str) -> None:
    code, stderr = run_cli(*args)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0] and "--help" in lines[0], stderr
