"""Run Anabranch servers as real processes, the way a user starts them, for tests and benchmarks.

``ServerProcess`` starts ``python -m anabranch <command> ...``, waits until every port it should
listen on accepts connections, and can stop it (SIGTERM), kill it (SIGKILL) and start it again on
the same data directory and ports. Every wait is bounded.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"


PORT_RANGE = (10_000, 32_000)
"""Where ``free_port`` looks: below Linux's ephemeral range (32768-60999 by default), so a port handed to a server
that starts a moment later cannot be taken meanwhile by some client's outgoing connection, as a port the kernel
picks with ``bind(0)`` can (seen as "address already in use" for NATS routes under load)."""
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nothing listens on, never the same twice in one process."""
    low, high = PORT_RANGE
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port on {HOST} in {low}-{high} after 1000 tries")


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"server exited with code {process.returncode} before listening on {port}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.05)


class ServerProcess:
    """One server process; ``ports`` are the ports it must listen on once started."""

    def __init__(self, args: list[str], ports: list[int], data_dir: Path, log_path: Path | None = None) -> None:
        self.args = args
        self.ports = ports
        self.data_dir = data_dir
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed after the spawn
        try:
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.process = subprocess.Popen(
                [sys.executable, "-m", "anabranch", *self.args], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        finally:
            log.close()
        try:
            for port in self.ports:
                wait_for_port(HOST, port, timeout, self.process)
        except Exception:
            self.kill()
            raise
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, exactly like a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
                raise
        code = int(self.process.returncode)
        self.process = None
        return code

    def restart(self, timeout: float = 60.0) -> ServerProcess:
        self.kill()
        return self.start(timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.kill()


class SegmentStoreProcess(ServerProcess):
    """``anabranch segmentstore``: the data plane alone."""

    def __init__(self, data_dir: Path, port: int | None = None, *extra: str) -> None:
        self.segmentstore_port = port or free_port()
        args = ["segmentstore", "--data-dir", str(data_dir), "--host", HOST, "--port", str(self.segmentstore_port),
                *extra]
        super().__init__(args, [self.segmentstore_port], data_dir)


class Standalone(ServerProcess):
    """``anabranch standalone``: controller and segment store in one process."""

    def __init__(self, data_dir: Path, controller_port: int | None = None, segmentstore_port: int | None = None,
                 *extra: str) -> None:
        self.controller_port = controller_port or free_port()
        self.segmentstore_port = segmentstore_port or free_port()
        args = [
            "standalone", "--data-dir", str(data_dir), "--host", HOST,
            "--controller-port", str(self.controller_port),
            "--segmentstore-port", str(self.segmentstore_port), *extra,
        ]
        super().__init__(args, [self.segmentstore_port, self.controller_port], data_dir)

    @property
    def controller_uri(self) -> str:
        return f"tcp://{HOST}:{self.controller_port}"
