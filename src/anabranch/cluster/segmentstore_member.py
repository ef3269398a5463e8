"""A segment store as a cluster member: ZooKeeper session, registration, container monitor, fenced containers.

``SegmentStoreMember`` is what ``SegmentStoreService`` adds in cluster mode. ``connect`` opens the ZooKeeper
session, checks the cluster's container count and that Tier-1 (NATS JetStream) answers, so an unreachable
engine stops the process at start with one clear error; ``join`` (once the wire port listens) registers the
host and starts the container monitor; ``leave`` closes the containers (flushing to LTS), then deregisters.

Starting container N for a new ownership (``open_container``): take a new epoch from ZooKeeper (CAS), open
the container's Tier-1 log with it (the fence: the previous owner's appends are rejected from then on), only
then open its LTS metadata with the same epoch (an older owner's later metadata writes are ignored), recover,
serve. The Tier-1 log is fenced before LTS is read so the previous owner cannot move data to LTS and truncate
Tier-1 behind the new owner's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from anabranch.cluster.container_monitor import ContainerMonitor
from anabranch.cluster.layout import DEFAULT_CLUSTER, ClusterPaths, ContainerMap, HostRecord
from anabranch.cluster.membership import HostRegistration, ensure_cluster_config
from anabranch.cluster.zk import DEFAULT_SESSION_TIMEOUT, ClusterUnavailableError, ZkClient
from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.store import SegmentStore
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.interfaces import Buffer, ChunkStorage, DurableDataLog

log = logging.getLogger(__name__)

Tier1Factory = Callable[[int, int], DurableDataLog]
"""``factory(container_id, epoch)``: the container's Tier-1 log for an owner of that epoch (not opened yet)."""

TIER1_CONNECT_TIMEOUT = 5.0
ZOOKEEPER_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class ClusterOptions:
    """How a segment store joins a cluster."""

    zookeeper: str
    """ZooKeeper connect string, ``host:port[,host:port...]``."""
    tier1: tuple[str, ...]
    """NATS JetStream servers, ``nats://host:port`` each."""
    name: str = DEFAULT_CLUSTER
    host_id: str | None = None
    """Default: ``host:port`` of the wire endpoint."""
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    check_interval: float = 2.0
    start_timeout: float = 30.0

    @property
    def paths(self) -> ClusterPaths:
        return ClusterPaths.for_cluster(self.name)


def parse_tier1(value: str) -> tuple[str, ...]:
    """``nats://h1:p1,h2:p2`` or ``nats://h1:p1,nats://h2:p2`` → one ``nats://`` URL per server."""
    servers = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if "://" in part and not part.startswith("nats://"):
            raise ValueError(f"Tier-1 server {part!r} is not a nats:// URL")
        servers.append(part if part.startswith("nats://") else f"nats://{part}")
    if not servers:
        raise ValueError(f"no Tier-1 server in {value!r}")
    return tuple(servers)


class _FencedLog:
    """The container's Tier-1 log whose ``open`` (the fence) is followed by opening the container's LTS."""

    def __init__(self, tier1: DurableDataLog, storage: ChunkedSegmentStorage) -> None:
        self.tier1 = tier1
        self._storage = storage

    async def open(self) -> None:
        await self.tier1.open()
        await self._storage.open()

    def iter_records(self, after: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        return self.tier1.iter_records(after)

    async def append(self, data: Buffer | Sequence[Buffer]) -> int:
        return await self.tier1.append(data)

    async def truncate(self, up_to: int) -> None:
        await self.tier1.truncate(up_to)

    async def close(self) -> None:
        await self.tier1.close()


class SegmentStoreMember:
    """The cluster side of one segment store process."""

    def __init__(self, options: ClusterOptions, store: SegmentStore, chunks: ChunkStorage, *,
                 cache_size: int, tier1_factory: Tier1Factory | None = None) -> None:
        self.options = options
        self.paths = options.paths
        self.store = store
        self._chunks = chunks
        self._cache_size = cache_size
        self._tier1_factory = tier1_factory or self._jetstream_log
        self.zk = ZkClient(options.zookeeper, session_timeout=options.session_timeout,
                           connect_timeout=ZOOKEEPER_CONNECT_TIMEOUT)
        self.registration: HostRegistration | None = None
        self.monitor: ContainerMonitor | None = None

    async def connect(self) -> None:
        """Open the ZooKeeper session and check the cluster's configuration and Tier-1; raise a one-line
        ``ClusterUnavailableError`` / ``ConfigError`` otherwise."""
        await self.zk.start()
        try:
            await ensure_cluster_config(self.zk, self.paths, self.store.container_count)
            if self._tier1_factory == self._jetstream_log:
                await check_tier1(self.options.tier1)
        except BaseException:
            await self.zk.stop()
            raise

    async def join(self, host: str, port: int) -> None:
        """Register as ``host_id`` (default ``host:port``) and start the containers the map assigns here."""
        host_id = self.options.host_id or f"{host}:{port}"
        self.registration = HostRegistration(self.zk, self.paths, HostRecord(host_id, host, port))
        await self.registration.register()
        self.monitor = ContainerMonitor(self.store, self.zk, self.paths, host_id, self.open_container,
                                        check_interval=self.options.check_interval,
                                        start_timeout=self.options.start_timeout,
                                        session_timeout=self.options.session_timeout)
        await self.monitor.start()

    async def leave(self) -> None:
        """Close the containers (flushing to LTS), deregister, close the session."""
        if self.monitor is not None:
            await self.monitor.stop()
        if self.registration is not None:
            await self.registration.unregister()
        await self.zk.stop()

    def status(self) -> dict[str, Any]:
        """The monitor's view (``assigned``, ``running``, ``failed``, ``healthy``…) plus the session state."""
        status: dict[str, Any] = self.monitor.status() if self.monitor is not None else {"healthy": False}
        status["zookeeper_connected"] = self.zk.connected
        return status

    async def owner_endpoint(self, container_id: int) -> tuple[str, int] | None:
        """Where the container map says ``container_id`` runs (host, wire port), None if nowhere now."""
        found = await self.zk.get_or_none(self.paths.container_map)
        owner = ContainerMap.decode(found[0]).owner_of(container_id) if found is not None else None
        record = await self.zk.get_or_none(self.paths.host(owner)) if owner is not None else None
        if record is None:
            return None
        host = HostRecord.decode(record[0])
        return host.host, host.port

    async def open_container(self, container_id: int, on_failure: Callable[[int], None]) -> SegmentContainer:
        from anabranch.cluster.epochs import next_container_epoch

        epoch = await next_container_epoch(self.zk, self.paths, container_id)
        log.info("container %d: owner epoch %d on %s", container_id, epoch, self.options.host_id or "this host")
        storage = ChunkedSegmentStorage(self._chunks, namespace=f"container-{container_id}", epoch=epoch)
        tier1 = _FencedLog(self._tier1_factory(container_id, epoch), storage)
        cache = max(self._cache_size // self.store.container_count, 1024 * 1024)
        return SegmentContainer(container_id, tier1, storage, cache_size=cache, on_failure=on_failure)

    def _jetstream_log(self, container_id: int, epoch: int) -> DurableDataLog:
        from anabranch.storage.jetstream_log import JetStreamDurableDataLog

        return JetStreamDurableDataLog(container_id, list(self.options.tier1), epoch,
                                       stream_prefix=f"anabranch-{self.options.name}")


async def check_tier1(servers: Sequence[str], timeout: float = TIER1_CONNECT_TIMEOUT) -> None:
    """Connect to NATS and ask JetStream for its account info; ``ClusterUnavailableError`` if that fails (after
    every server refused once, or ``timeout``)."""
    import nats

    urls = ",".join(servers)
    errors: list[Exception] = []
    gave_up = asyncio.Event()

    async def on_error(exc: Exception) -> None:  # nats-py retries the first connect by itself; count them
        errors.append(exc)
        if len(errors) >= len(servers):
            gave_up.set()

    async def probe() -> None:
        client = await nats.connect(servers=list(servers), connect_timeout=min(timeout, 2.0),
                                    allow_reconnect=False, max_reconnect_attempts=0, error_cb=on_error)
        try:
            await client.jetstream(timeout=timeout).account_info()
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    task = asyncio.ensure_future(probe())
    refused = asyncio.ensure_future(gave_up.wait())
    try:
        await asyncio.wait([task, refused], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        refused.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    failure = task.exception() if task.done() and not task.cancelled() else None
    if task.done() and not task.cancelled() and failure is None:
        return
    cause = failure or (errors[-1] if errors else TimeoutError(f"no answer within {timeout:g} s"))
    detail = str(cause) or type(cause).__name__
    raise ClusterUnavailableError(f"Tier-1 (NATS JetStream) at {urls} is not available: {detail}")
