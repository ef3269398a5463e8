"""Run a real ZooKeeper ensemble from Debian's ``zookeeper`` jars (``apt-get install zookeeper``), with java.

Used by ``anabranch cluster up`` and by the cluster tests. Each node gets its own directory (``zoo.cfg``,
``data/myid``, logs) and free loopback ports; nodes run in their own session so that a Ctrl-C aimed at the
parent does not reach them, and are stopped by pid. ``start`` returns once every node answers ``srvr`` with
a mode (leader, follower or standalone).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from anabranch.cluster.node_group import NodeGroup
from anabranch.errors import ConfigError
from anabranch.testing.processes import free_port

JAR_DIR = Path("/usr/share/java")
"""Where Debian's ``zookeeper`` package puts its jars."""
TICK_MS = 500


class ZooKeeperNotInstalledError(ConfigError):
    """java or the ZooKeeper jars are missing."""


def zookeeper_classpath(jar_dir: Path = JAR_DIR) -> str:
    """The class path that runs ``QuorumPeerMain`` from Debian's packaging."""
    jars = [jar_dir / "zookeeper.jar", jar_dir / "slf4j-simple.jar"]
    missing = [str(j) for j in jars if not j.exists()]
    if missing or shutil.which("java") is None:
        raise ZooKeeperNotInstalledError(
            "ZooKeeper needs java and Debian's zookeeper jars "
            f"({', '.join(missing) or 'java not on PATH'} missing): run `apt-get install -y zookeeper`")
    return ":".join(str(j) for j in jars)


def four_letter_word(host: str, port: int, word: str = "srvr", timeout: float = 1.0) -> str:
    """Send a ZooKeeper four-letter command and return the answer ('' when nothing answers)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks = []
            while data := sock.recv(4096):
                chunks.append(data)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def node_mode(host: str, port: int) -> str | None:
    """``leader``, ``follower`` or ``standalone`` when the node serves, else None."""
    for line in four_letter_word(host, port).splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


class ZooKeeperEnsemble(NodeGroup):
    """``nodes`` ZooKeeper servers on ``host`` (1 for a standalone server, 3 for a quorum)."""

    def __init__(self, base_dir: Path, nodes: int = 3, host: str = "127.0.0.1", *, heap_mb: int = 256,
                 client_ports: list[int] | None = None) -> None:
        if nodes < 1:
            raise ConfigError(f"a ZooKeeper ensemble needs at least one node, got {nodes}")
        self.base_dir = Path(base_dir)
        super().__init__(nodes)
        self.host = host
        self.heap_mb = heap_mb
        self.client_ports = client_ports or [free_port() for _ in range(nodes)]
        self._peer_ports = [(free_port(), free_port()) for _ in range(nodes)] if nodes > 1 else []

    @property
    def connect_string(self) -> str:
        return ",".join(f"{self.host}:{port}" for port in self.client_ports)

    def node_dir(self, index: int) -> Path:
        return self.base_dir / f"zk{index + 1}"

    def _write_config(self, index: int) -> Path:
        node = self.node_dir(index)
        (node / "data").mkdir(parents=True, exist_ok=True)
        (node / "log").mkdir(parents=True, exist_ok=True)
        (node / "data" / "myid").write_text(f"{index + 1}\n")
        lines = [
            f"tickTime={TICK_MS}", "initLimit=20", "syncLimit=10",
            f"dataDir={node / 'data'}", f"clientPort={self.client_ports[index]}", f"clientPortAddress={self.host}",
            "admin.enableServer=false", "4lw.commands.whitelist=*",
            "minSessionTimeout=1000", "maxSessionTimeout=60000",
        ]
        lines += [f"server.{i + 1}={self.host}:{peer}:{election}"
                  for i, (peer, election) in enumerate(self._peer_ports)]
        config = node / "zoo.cfg"
        config.write_text("\n".join(lines) + "\n")
        return config

    def _spawn(self, index: int) -> None:
        classpath = zookeeper_classpath()
        config = self._write_config(index)
        node = self.node_dir(index)
        with open(node / "log" / "out.log", "ab") as out:
            self._processes[index] = subprocess.Popen(
                ["java", f"-Xmx{self.heap_mb}m", "-Xms32m", "-XX:+UseSerialGC", "-Djute.maxbuffer=4194304",
                 f"-Dzookeeper.log.dir={node / 'log'}", "-cp", classpath,
                 "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(config)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0, indexes: list[int] | None = None) -> None:
        """Wait until every (or each given) node serves; raise ``TimeoutError`` naming the laggards."""
        deadline = time.monotonic() + timeout
        waiting = list(range(self.nodes)) if indexes is None else list(indexes)
        while waiting:
            for index in list(waiting):
                process = self._processes[index]
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"ZooKeeper node {index + 1} exited with code {process.returncode}; "
                                       f"see {self.node_dir(index) / 'log' / 'out.log'}")
                if node_mode(self.host, self.client_ports[index]) is not None:
                    waiting.remove(index)
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"ZooKeeper nodes {[i + 1 for i in waiting]} not serving after {timeout} s")
            if waiting:
                time.sleep(0.05)
