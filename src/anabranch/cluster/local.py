"""``LocalCluster``: a whole Anabranch cluster on one machine, as real processes.

It starts a ZooKeeper ensemble (Debian's jars, run with java), a 3-node NATS JetStream cluster (Tier-1), then the
segment stores (each with its own data directory, all sharing one LTS directory) and the controllers, each on free
loopback ports; it records what it started in ``<data dir>/cluster.json`` so that ``anabranch cluster status``
(another process) can report on it. ``anabranch cluster up`` runs one in the foreground; the failover tests drive
one directly (kill -9 a segment store or a controller, restart it).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anabranch.auth.tokens import load_or_create_key
from anabranch.cluster.layout import DEFAULT_CLUSTER, ClusterPaths, ContainerMap, HostRecord
from anabranch.cluster.nats_server import NatsCluster
from anabranch.cluster.zookeeper_server import ZooKeeperEnsemble
from anabranch.errors import ConfigError
from anabranch.testing.processes import ServerProcess, free_port

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"


@dataclass
class LocalClusterConfig:
    data_dir: Path
    segmentstores: int = 3
    controllers: int = 2
    host: str = "127.0.0.1"
    containers: int = 8
    zookeeper_nodes: int = 3
    nats_nodes: int = 3
    name: str = DEFAULT_CLUSTER
    extra_segmentstore_args: list[str] = field(default_factory=list)
    extra_controller_args: list[str] = field(default_factory=list)


def key_file(config: LocalClusterConfig) -> Path:
    """The token signing key every process of the cluster shares (system tokens; delegation tokens with auth)."""
    return Path(config.data_dir) / "token-signing.key"


class SegmentStoreNode(ServerProcess):
    """One ``anabranch segmentstore`` of the cluster."""

    def __init__(self, index: int, config: LocalClusterConfig, zookeeper: str, tier1: str) -> None:
        self.index = index
        self.port = free_port()
        self.host = config.host
        data_dir = Path(config.data_dir) / "segmentstores" / f"ss{index + 1}"
        args = ["segmentstore", "--data-dir", str(data_dir), "--host", config.host, "--port", str(self.port),
                "--zookeeper", zookeeper, "--tier1", tier1, "--cluster", config.name,
                "--containers", str(config.containers), "--lts-dir", str(Path(config.data_dir) / "lts"),
                "--token-signing-key-file", str(key_file(config)), *config.extra_segmentstore_args]
        super().__init__(args, [self.port], data_dir, Path(config.data_dir) / "logs" / f"segmentstore-{index + 1}.log")

    @property
    def host_id(self) -> str:
        return f"{self.host}:{self.port}"


class ControllerNode(ServerProcess):
    """One ``anabranch controller`` of the cluster."""

    def __init__(self, index: int, config: LocalClusterConfig, zookeeper: str) -> None:
        self.index = index
        self.port = free_port()
        self.admin_port = free_port()
        self.host = config.host
        data_dir = Path(config.data_dir) / "controllers" / f"c{index + 1}"
        args = ["controller", "--zookeeper", zookeeper, "--cluster", config.name, "--host", config.host,
                "--port", str(self.port), "--admin-port", str(self.admin_port),
                "--token-signing-key-file", str(key_file(config)), *config.extra_controller_args]
        super().__init__(args, [self.port], data_dir, Path(config.data_dir) / "logs" / f"controller-{index + 1}.log")

    @property
    def uri(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class LocalCluster:
    """Start, observe and break a cluster made of real processes on this machine."""

    def __init__(self, config: LocalClusterConfig) -> None:
        if config.segmentstores < 1 or config.controllers < 1:
            raise ConfigError("a cluster needs at least one segment store and one controller")
        if config.containers < config.segmentstores:
            raise ConfigError(f"{config.containers} containers cannot spread over {config.segmentstores} "
                              "segment stores; use --containers at least as large")
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.paths = ClusterPaths.for_cluster(config.name)
        self.zookeeper = ZooKeeperEnsemble(self.data_dir / "zookeeper", nodes=config.zookeeper_nodes,
                                           host=config.host)
        self.nats = NatsCluster(self.data_dir / "nats", nodes=config.nats_nodes, host=config.host)
        self.segmentstores: list[SegmentStoreNode] = []
        self.controllers: list[ControllerNode] = []

    @property
    def tier1(self) -> str:
        return "nats://" + ",".join(url.removeprefix("nats://") for url in self.nats.urls)

    @property
    def controller_uris(self) -> list[str]:
        return [c.uri for c in self.controllers]

    @property
    def controller_uri(self) -> str:
        """The URI a client is given: every controller, comma-separated (any of them serves any rpc)."""
        return "tcp://" + ",".join(f"{c.host}:{c.port}" for c in self.controllers)

    def start(self, timeout: float = 120.0) -> LocalCluster:
        """Start everything and return once every process listens (then ``wait_ready`` for containers)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        load_or_create_key(key_file(self.config))
        try:
            self._start_engines(timeout)
            zk, tier1 = self.zookeeper.connect_string, self.tier1
            self.segmentstores = [SegmentStoreNode(i, self.config, zk, tier1)
                                  for i in range(self.config.segmentstores)]
            self.controllers = [ControllerNode(i, self.config, zk) for i in range(self.config.controllers)]
            for node in self.segmentstores:
                node.start(timeout)
            for controller in self.controllers:
                controller.start(timeout)
            self.write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_engines(self, timeout: float, attempts: int = 3) -> None:
        """Start ZooKeeper and NATS on free ports; a port taken by another process between choosing and binding it
        makes a node exit, so try again on fresh ports."""
        for attempt in range(1, attempts + 1):
            try:
                log.info("starting ZooKeeper (%d nodes)", self.config.zookeeper_nodes)
                self.zookeeper.start(timeout)
                log.info("starting NATS JetStream (%d nodes)", self.config.nats_nodes)
                self.nats.start(timeout)
                return
            except (RuntimeError, TimeoutError) as exc:
                self.nats.stop()
                self.zookeeper.stop()
                if attempt == attempts:
                    raise
                log.warning("ZooKeeper or NATS did not start (%s); trying again on other ports", exc)
                self.zookeeper = ZooKeeperEnsemble(self.data_dir / f"zookeeper-{attempt}",
                                                   nodes=self.config.zookeeper_nodes, host=self.config.host)
                self.nats = NatsCluster(self.data_dir / f"nats-{attempt}", nodes=self.config.nats_nodes,
                                        host=self.config.host)

    def wait_ready(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until ``status()`` says ready; return it (``TimeoutError`` with the last status otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status["ready"]:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not ready after {timeout} s: {json.dumps(status)}")
            time.sleep(0.2)

    def status(self) -> dict[str, Any]:
        return cluster_status(self.data_dir)

    def kill(self, node: ServerProcess) -> None:
        """SIGKILL one segment store or controller (a crash)."""
        node.kill()
        self.write_state()

    def restart(self, node: ServerProcess, timeout: float = 120.0) -> None:
        """Start a killed segment store or controller again, on its ports and data directory."""
        node.start(timeout)
        self.write_state()

    def kill_tier1_node(self, index: int) -> None:
        """SIGKILL one NATS server of the Tier-1 cluster."""
        self.nats.kill(index)
        self.write_state()

    def restart_tier1_node(self, index: int, timeout: float = 120.0) -> None:
        self.nats.restart(index, timeout)
        self.write_state()

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "name": self.config.name,
            "containers": self.config.containers,
            "zookeeper": {"connect": self.zookeeper.connect_string, "pids": self.zookeeper.pids},
            "tier1": {"urls": self.nats.urls, "pids": self.nats.pids},
            "controllers": [{"uri": c.uri, "admin": f"http://{c.host}:{c.admin_port}/",
                             "pid": c.process.pid if c.process else None} for c in self.controllers],
            "segmentstores": [{"id": s.host_id, "endpoint": s.host_id, "pid": s.process.pid if s.process else None}
                              for s in self.segmentstores],
        }
        path = self.data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)

    def stop(self) -> None:
        """SIGTERM everything that was started, controllers first, engines last."""
        for process in [*self.controllers, *self.segmentstores]:
            try:
                process.stop(timeout=30)
            except Exception:
                log.warning("%s did not stop cleanly; killed", process.args[0], exc_info=True)
                process.kill()
        self.nats.stop()
        self.zookeeper.stop()
        state = self.data_dir / STATE_FILE
        if state.exists():
            state.unlink()


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listens(endpoint: str) -> bool:
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


ZkState = tuple[dict[str, HostRecord], ContainerMap, dict[str, set[int]]]


def _read_zookeeper(connect: str, paths: ClusterPaths) -> ZkState | None:
    """Live segment stores, the container map and the containers each segment store serves (recovered), or None
    when ZooKeeper does not answer."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoNodeError
    from kazoo.handlers.threading import KazooTimeoutError

    client = KazooClient(hosts=connect, timeout=4.0)
    try:
        client.start(timeout=5.0)
    except KazooTimeoutError:
        client.close()
        return None
    try:
        hosts: dict[str, HostRecord] = {}
        try:
            for child in client.get_children(paths.hosts):
                try:
                    record = HostRecord.decode(client.get(paths.host(child))[0])
                except NoNodeError:
                    continue
                hosts[record.host_id] = record
        except NoNodeError:
            pass
        try:
            container_map = ContainerMap.decode(client.get(paths.container_map)[0])
        except NoNodeError:
            container_map = ContainerMap()
        serving: dict[str, set[int]] = {}
        for host_id in hosts:
            try:
                serving[host_id] = set(json.loads(client.get(paths.running_on(host_id))[0])["running"])
            except (NoNodeError, ValueError, KeyError):
                serving[host_id] = set()
        return hosts, container_map, serving
    finally:
        client.stop()
        client.close()


def cluster_status(data_dir: Path) -> dict[str, Any]:
    """What ``anabranch cluster status`` prints: ``ready``, controllers, segment stores with their containers,
    ZooKeeper and Tier-1. Ready = every process alive and listening, and every container assigned to a live
    segment store that has recovered it and serves it (``serving``, from its ``running/<host id>`` node)."""
    path = Path(data_dir) / STATE_FILE
    if not path.exists():
        raise ConfigError(f"no cluster runs from {data_dir} (no {STATE_FILE}); start one with `anabranch cluster up`")
    state = json.loads(path.read_text())
    paths = ClusterPaths.for_cluster(state["name"])
    zk_state = _read_zookeeper(state["zookeeper"]["connect"], paths)
    hosts, container_map, serving = zk_state if zk_state is not None else ({}, ContainerMap(), {})
    controllers = [{"uri": c["uri"], "pid": c["pid"], "admin": c["admin"],
                    "alive": pid_alive(c["pid"]) and _listens(c["uri"].removeprefix("tcp://"))}
                   for c in state["controllers"]]
    segmentstores = [{"id": s["id"], "endpoint": s["endpoint"], "pid": s["pid"],
                      "alive": pid_alive(s["pid"]) and _listens(s["endpoint"]),
                      "registered": s["id"] in hosts,
                      "containers": sorted(container_map.assignment.get(s["id"], ())),
                      "serving": sorted(serving.get(s["id"], ()))}
                     for s in state["segmentstores"]]
    served = {c for s in segmentstores if s["alive"] and s["registered"] for c in s["containers"]
              if c in s["serving"]}
    zookeeper = {"connect": state["zookeeper"]["connect"], "pids": state["zookeeper"]["pids"],
                 "alive": zk_state is not None}
    tier1 = {"engine": "nats-jetstream", "urls": state["tier1"]["urls"], "pids": state["tier1"]["pids"],
             "alive": all(pid_alive(pid) for pid in state["tier1"]["pids"])}
    ready = (zookeeper["alive"] and tier1["alive"] and all(c["alive"] for c in controllers)
             and all(s["alive"] and s["registered"] for s in segmentstores)
             and served == set(range(state["containers"])))
    return {"ready": ready, "name": state["name"], "containers": state["containers"], "pid": state["pid"],
            "controllers": controllers, "segmentstores": segmentstores, "zookeeper": zookeeper, "tier1": tier1}
