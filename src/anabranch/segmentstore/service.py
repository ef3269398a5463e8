"""SegmentStoreService: the segment store as one object: store + table store + wire server.

``start`` opens (and recovers) the store, then listens; ``stop`` stops accepting, closes connections and
closes the store (flushing everything pending). With ``tls`` the wire port speaks only TLS. Used by
``anabranch segmentstore`` and, in-process, by ``anabranch standalone``.

With ``cluster`` options the store starts empty and joins the cluster (``anabranch.cluster.segmentstore_member``):
containers start and stop as the cluster's container map says, Tier-1 is NATS JetStream, LTS is ``lts`` (or
``data_dir/lts``), which every segment store of the cluster must share. ``cluster_status()`` says which containers
run and whether all assigned ones are healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anabranch.clock import SYSTEM_CLOCK, Clock
from anabranch.segmentstore.local_connection import LocalConnection, connector
from anabranch.segmentstore.server import WireServer
from anabranch.segmentstore.stats import (
    AutoScaleConfig,
    ScaleReporter,
    SegmentStatsRecorder,
    TableScaleReporter,
    store_policy_lookup,
)
from anabranch.segmentstore.store import SegmentStore, container_id_for, open_segment_store
from anabranch.segmentstore.tables import TableStore
from anabranch.storage.chunks_fs import FileSystemChunkStorage
from anabranch.storage.interfaces import ChunkStorage
from anabranch.tls import ServerTls

if TYPE_CHECKING:
    from anabranch.auth.server import ServerAuth
    from anabranch.cluster.segmentstore_member import ClusterOptions, SegmentStoreMember, Tier1Factory

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class SegmentStoreService:
    """A segment store serving the Pravega wire protocol on ``host:port`` with data under ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 12345,
        *,
        container_count: int = 4,
        cache_size: int = 256 * MIB,
        tail_read_timeout: float = 20.0,
        tls: ServerTls | None = None,
        lts: ChunkStorage | None = None,
        autoscale: AutoScaleConfig | None = None,
        cluster: ClusterOptions | None = None,
        tier1_factory: Tier1Factory | None = None,
        auth: ServerAuth | None = None,
        clock: Clock | None = None,
        durable: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.durable = durable
        """False: Tier-1 and LTS in memory (embedded test servers); nothing is written under ``data_dir``."""
        self.clock: Clock = clock or SYSTEM_CLOCK
        """Drives the containers' timers (LTS flushes, timestamps) and the auto-scale statistics."""
        self.auth = auth
        """Token checks on every request (None: none at all, for embedding in tests)."""
        self.host = host
        self.port = port
        self.container_count = container_count
        self.cache_size = cache_size
        self.tail_read_timeout = tail_read_timeout
        self.tls = tls
        self.lts = lts
        self.autoscale = autoscale or AutoScaleConfig()
        """Timing of the traffic statistics that drive auto-scaling (Pravega's defaults unless compressed)."""
        self.stats: SegmentStatsRecorder | None = None
        self._stats_task: asyncio.Task[None] | None = None
        """Chunk storage for LTS; None: the filesystem under ``data_dir/lts``."""
        self.store: SegmentStore | None = None
        self.tables: TableStore | None = None
        self._server: WireServer | None = None
        self._stopped = asyncio.Event()
        self.cluster = cluster
        self._tier1_factory = tier1_factory
        """Cluster mode: builds each container's Tier-1 log (default: NATS JetStream on ``cluster.tier1``)."""
        self.member: SegmentStoreMember | None = None

    async def start(self) -> None:
        if self.durable:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.cluster is not None:
            self.store = await self._join_cluster_store()
        else:
            self.store = await open_segment_store(self.data_dir, self.container_count, cache_size=self.cache_size,
                                                  lts=self.lts, clock=self.clock, durable=self.durable)
        self.tables = TableStore(self.store)
        self.store.add_listener(self._container_changed)
        local = TableScaleReporter(self.tables)
        reporter: ScaleReporter = local
        if self.member is not None:
            from anabranch.cluster.scale_reporting import ClusterScaleReporter

            auth = self.auth
            reporter = ClusterScaleReporter(local, self.store, self.member.owner_endpoint,
                                            token=lambda: auth.system_token() if auth is not None else "")
        self.stats = SegmentStatsRecorder.from_config(self.clock, reporter, self.autoscale,
                                                      policy_lookup=store_policy_lookup(self.store))
        self._server = WireServer(self.store, self.tables, tail_read_timeout=self.tail_read_timeout,
                                  stats=self.stats,
                                  auth=self.auth.wire_authorizer() if self.auth is not None else None)
        try:
            ssl_context = self.tls.ssl_context() if self.tls is not None else None
            self.port = await self._server.start(self.host, self.port, ssl_context=ssl_context)
            if self.member is not None:
                await self.member.join(self.host, self.port)
        except BaseException:
            await self._server.stop()
            if self.member is not None:
                await self.member.leave()
            await self.store.close()
            raise
        self._stats_task = asyncio.get_running_loop().create_task(self.stats.run(), name="segment-stats")
        log.debug("segment store listening on %s:%d (data in %s)", self.host, self.port, self.data_dir)

    def local_connector(self) -> Callable[[str, int], Awaitable[LocalConnection]]:
        """Opens in-process connections to this segment store while it runs (how a standalone's controller reaches
        it: the same request handling as over TCP, without the socket and the encoding)."""
        return connector(lambda: self._server)

    async def _join_cluster_store(self) -> SegmentStore:
        """An empty store whose containers the cluster member starts once it joined."""
        from anabranch.cluster.segmentstore_member import SegmentStoreMember

        assert self.cluster is not None
        store = SegmentStore([], container_count=self.container_count)
        chunks = self.lts if self.lts is not None else FileSystemChunkStorage(self.data_dir / "lts")
        self.member = SegmentStoreMember(self.cluster, store, chunks, cache_size=self.cache_size,
                                         tier1_factory=self._tier1_factory)
        await self.member.connect()
        return store

    def _container_changed(self, container_id: int, running: bool) -> None:
        if self.tables is not None and self.store is not None:
            count = self.store.container_count
            self.tables.forget_where(lambda name: container_id_for(name, count) == container_id)

    def cluster_status(self) -> dict[str, Any]:
        """Which containers run here and whether every assigned one is healthy (standalone: all, always)."""
        if self.member is not None:
            return self.member.status()
        running = self.store.container_ids() if self.store is not None else []
        return {"assigned": running, "running": running, "starting": [], "failed": {},
                "healthy": self.store is not None and not any(c.failed for c in self.store.containers)}

    async def stop(self, *, crash: bool = False) -> None:
        """Stop serving and close the store, flushing what is pending; ``crash``: abort the containers instead,
        flushing nothing, as a killed process would (for tests: what was acknowledged is in Tier-1 already)."""
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
            self._stats_task = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self.member is not None:
            await self.member.leave()
            self.member = None
        if self.tables is not None:
            await self.tables.close()
            self.tables = None
        if self.store is not None:
            await (self.store.abort() if crash else self.store.close())
            self.store = None
        self._stopped.set()

    async def serve_forever(self) -> None:
        """Serve until ``stop`` is called."""
        await self._stopped.wait()

    async def __aenter__(self) -> SegmentStoreService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
