"""Where cluster state lives in ZooKeeper, and how each node's data is encoded.

Every process of one cluster uses the paths below under a root (default ``/anabranch/<cluster name>``):

| path | kind | written by | data |
| --- | --- | --- | --- |
| ``config`` | persistent | first process to start | ``{"containers": N}``, fixed for the cluster's life |
| ``hosts/<host id>`` | ephemeral | each segment store | ``HostRecord``: its wire endpoint |
| ``controllers/<id>`` | ephemeral | each controller | ``{"uri": ...}``: its gRPC endpoint |
| ``controller-leader`` | kazoo ``Election`` | controllers | the leader balances containers, runs cluster-wide jobs |
| ``container-map`` | persistent | the controller leader | ``ContainerMap``: host id → container ids |
| ``container-epochs/<n>`` | persistent | a new owner (CAS on the znode version) | the owner epoch (decimal) |
| ``running/<host id>`` | ephemeral | each segment store | ``{"running", "assigned", "healthy"}``: what it serves |

The map is advisory; safety comes from fencing (Tier-1 and LTS) with the epochs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

DEFAULT_CLUSTER = "anabranch"


@dataclass(frozen=True, slots=True)
class ClusterPaths:
    """The ZooKeeper paths of one cluster."""

    root: str

    @classmethod
    def for_cluster(cls, name: str = DEFAULT_CLUSTER) -> ClusterPaths:
        return cls(f"/anabranch/{name}")

    @property
    def config(self) -> str:
        return f"{self.root}/config"

    @property
    def hosts(self) -> str:
        return f"{self.root}/hosts"

    def host(self, host_id: str) -> str:
        return f"{self.hosts}/{host_id}"

    @property
    def running(self) -> str:
        return f"{self.root}/running"

    def running_on(self, host_id: str) -> str:
        """What the segment store ``host_id`` runs now (written by its container monitor)."""
        return f"{self.running}/{host_id}"

    @property
    def controllers(self) -> str:
        return f"{self.root}/controllers"

    def controller(self, controller_id: str) -> str:
        return f"{self.controllers}/{controller_id}"

    @property
    def controller_leader(self) -> str:
        return f"{self.root}/controller-leader"

    @property
    def container_map(self) -> str:
        return f"{self.root}/container-map"

    @property
    def container_epochs(self) -> str:
        return f"{self.root}/container-epochs"

    def container_epoch(self, container_id: int) -> str:
        return f"{self.container_epochs}/{container_id}"


@dataclass(frozen=True, slots=True)
class HostRecord:
    """A segment store's registration: where clients and controllers reach its wire port."""

    host_id: str
    host: str
    port: int

    def encode(self) -> bytes:
        return json.dumps({"id": self.host_id, "host": self.host, "port": self.port}).encode()

    @classmethod
    def decode(cls, data: bytes) -> HostRecord:
        value = json.loads(data)
        return cls(str(value["id"]), str(value["host"]), int(value["port"]))


@dataclass(frozen=True, slots=True)
class ContainerMap:
    """Which segment store (by host id) owns which containers; ``version`` grows with every rewrite."""

    assignment: dict[str, tuple[int, ...]] = field(default_factory=dict)
    version: int = 0

    def owner_of(self, container_id: int) -> str | None:
        for host_id, containers in self.assignment.items():
            if container_id in containers:
                return host_id
        return None

    def encode(self) -> bytes:
        return json.dumps({"version": self.version,
                           "hosts": {h: sorted(cs) for h, cs in sorted(self.assignment.items())}}).encode()

    @classmethod
    def decode(cls, data: bytes) -> ContainerMap:
        if not data:
            return cls()
        value = json.loads(data)
        return cls({str(h): tuple(int(c) for c in cs) for h, cs in value.get("hosts", {}).items()},
                   int(value.get("version", 0)))


def encode_config(container_count: int) -> bytes:
    return json.dumps({"containers": container_count}).encode()


def decode_config(data: bytes) -> int:
    return int(json.loads(data)["containers"])
