"""SegmentStoreService: the segment store as one object: store + table store + wire server.

``start`` opens (and recovers) the store, then listens; ``stop`` stops accepting, closes connections and
closes the store (flushing everything pending). With ``tls`` the wire port speaks only TLS. Used by
``anabranch segmentstore`` and, in-process, by ``anabranch standalone``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from anabranch.clock import SystemClock
from anabranch.segmentstore.server import WireServer
from anabranch.segmentstore.stats import AutoScaleConfig, SegmentStatsRecorder, TableScaleReporter, store_policy_lookup
from anabranch.segmentstore.store import SegmentStore, open_segment_store
from anabranch.segmentstore.tables import TableStore
from anabranch.storage.interfaces import ChunkStorage
from anabranch.tls import ServerTls

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
    ) -> None:
        self.data_dir = Path(data_dir)
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

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = await open_segment_store(self.data_dir, self.container_count, cache_size=self.cache_size,
                                              lts=self.lts)
        self.tables = TableStore(self.store)
        self.stats = SegmentStatsRecorder.from_config(SystemClock(), TableScaleReporter(self.tables), self.autoscale,
                                                      policy_lookup=store_policy_lookup(self.store))
        self._server = WireServer(self.store, self.tables, tail_read_timeout=self.tail_read_timeout,
                                  stats=self.stats)
        try:
            ssl_context = self.tls.ssl_context() if self.tls is not None else None
            self.port = await self._server.start(self.host, self.port, ssl_context=ssl_context)
        except BaseException:
            await self.store.close()
            raise
        self._stats_task = asyncio.get_running_loop().create_task(self.stats.run(), name="segment-stats")
        log.debug("segment store listening on %s:%d (data in %s)", self.host, self.port, self.data_dir)

    async def stop(self) -> None:
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
            self._stats_task = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self.tables is not None:
            await self.tables.close()
            self.tables = None
        if self.store is not None:
            await self.store.close()
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
