"""``Controller``: the workflows wired together over one segment store, plus the operations that span
several of them (recursive scope deletion, stream heads, the startup sweep).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from anabranch.controller.context import ControllerContext, wall_clock_ms
from anabranch.controller.kvtables import KeyValueTables
from anabranch.controller.metadata import SCOPE_INDEXES
from anabranch.controller.readergroups import ReaderGroups
from anabranch.controller.scaling import Scaling
from anabranch.controller.segment_helper import SegmentStoreOps
from anabranch.controller.streams import Streams
from anabranch.controller.transactions import Transactions
from anabranch.controller.writers import Writers
from anabranch.model.names import SYSTEM_SCOPE
from anabranch.protocol import controller_pb2 as pb

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, ops: SegmentStoreOps, segment_store_host: str, segment_store_port: int, *,
                 host: str = "127.0.0.1", port: int = 9090, monotonic: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.ctx = ControllerContext(ops, monotonic=monotonic, wall_ms=wall_ms)
        self.store = self.ctx.store
        self.segment_store_host = segment_store_host
        self.segment_store_port = segment_store_port
        self.host = host
        self.port = port
        self.segment_store_uri: Callable[[str], Awaitable[tuple[str, int]]] = self._the_segment_store
        """Where clients reach a segment (``getURI``); a cluster controller answers the owner of its container."""
        self.controller_uris: Callable[[], list[tuple[str, int]]] = lambda: [(self.host, self.port)]
        """Every live controller (``getControllerServerList``)."""
        self.scaling = Scaling(self.ctx)
        self.streams = Streams(self.ctx, self.scaling)
        self.txns = Transactions(self.ctx, self.scaling)
        self.streams.before_seal.append(self.txns.settle_before_seal)
        self.readergroups = ReaderGroups(self.ctx, self.streams)
        self.kvtables = KeyValueTables(self.ctx)
        self.writers = Writers(self.ctx)

    async def _the_segment_store(self, segment: str) -> tuple[str, int]:
        return self.segment_store_host, self.segment_store_port

    async def bootstrap(self) -> None:
        """Create the system tables and the ``_system`` scope, then finish interrupted workflows."""
        await self.store.bootstrap()
        if not await self.store.scope_exists(SYSTEM_SCOPE):
            for index in SCOPE_INDEXES:
                await self.store.scope_index(SYSTEM_SCOPE, index).create()
            await self.store.scopes.put(SYSTEM_SCOPE, {"created": self.ctx.wall_ms()})
        await self.resume_all()

    async def resume_all(self) -> None:
        """Every stream once (one read each; streams with transaction records also resume those), then KVTs."""
        await self.streams.resume_all(with_txns=self.txns.resume)
        await self.kvtables.resume_all()

    async def resume_unfinished(self) -> None:
        """The periodic sweep of a lone controller: resume only what failed here since the last sweep (every
        failed workflow ran under its scope/stream lock, which recorded it), not every stream."""
        failed, self.ctx.unfinished = self.ctx.unfinished, set()
        for scope, name in sorted(failed):
            if not name:
                continue
            try:
                await self.streams.resume(scope, name)
                await self.txns.resume(scope, name)
            except Exception:
                self.ctx.unfinished.add((scope, name))
                log.exception("could not resume workflows of %s/%s", scope, name)
        await self.kvtables.resume_all()

    async def head(self, scope: str, stream: str) -> list[tuple[int, int]]:
        """The head of the stream: the last truncation cut, else epoch 0 at offset 0."""
        view = await self.ctx.view(scope, stream)
        truncation = await view.table.get_value("truncation")
        if truncation is not None:
            return sorted((int(k), int(v)) for k, v in truncation["cut"].items())
        return [(s.id, 0) for s in (await self.ctx.epoch(view, 0)).sorted_segments()]

    async def delete_scope_recursive(self, scope: str) -> str:
        if not await self.store.scope_exists(scope):
            return "SCOPE_NOT_FOUND"
        groups = [(k.decode(), v) async for k, v, _ver in self.store.scope_index(scope, "readerGroups").items()]
        for group, value in groups:
            config = pb.ReaderGroupConfiguration.FromString(value["config"])
            await self.readergroups.delete(scope, group, config.readerGroupId)
        tables = [k.decode() async for k, _v, _ver in self.store.scope_index(scope, "kvTables").items()]
        for kvt in tables:
            await self.kvtables.delete(scope, kvt)
        names = [k.decode() async for k, _v, _ver in self.store.scope_index(scope, "streams").items()]
        for stream in names:
            await self.streams.delete_internal_stream(scope, stream)
        return await self.streams.delete_scope(scope)
