"""Reader-group configurations (Java client) and stream subscribers.

A reader group's configuration is stored as its proto bytes in the scope's ``readerGroups`` index,
so ``getReaderGroupConfig`` and ``createReaderGroup`` echo exactly what was stored (the Java client
compares configs field by field). Rules (spec §4.6): the generation starts at 0 and grows by one per
update; an update or delete must name the stored ``readerGroupId``. A group with a retention type
other than NONE subscribes to each of its streams (``subscriber/<scope/group>`` in the stream's table).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from anabranch.controller.context import ControllerContext
from anabranch.controller.epochs import all_segments, is_cut_valid
from anabranch.controller.errors import InvalidArgumentError, StreamNotFoundError
from anabranch.controller.metadata import Table
from anabranch.controller.records import StreamConfiguration
from anabranch.controller.streams import Streams
from anabranch.model.names import READER_GROUP_STREAM_PREFIX, is_valid_user_name
from anabranch.protocol import controller_pb2 as pb

log = logging.getLogger(__name__)

SUBSCRIBER_PREFIX = "subscriber/"
NIL_UUID = uuid.UUID(int=0)


def _subscriber(scope: str, group: str) -> str:
    return f"{scope}/{group}"


class ReaderGroups:
    def __init__(self, ctx: ControllerContext, streams: Streams) -> None:
        self.ctx = ctx
        self.streams = streams

    def _index(self, scope: str) -> Table:
        return self.ctx.store.scope_index(scope, "readerGroups")

    async def _stored(self, scope: str, group: str) -> tuple[pb.ReaderGroupConfiguration, int] | None:
        if not await self.ctx.store.scope_exists(scope):
            return None
        found = await self._index(scope).get(group)
        if found is None:
            return None
        return pb.ReaderGroupConfiguration.FromString(found[0]["config"]), found[1]

    async def create(self, config: pb.ReaderGroupConfiguration) -> tuple[str, pb.ReaderGroupConfiguration | None]:
        scope, group = config.scope, config.readerGroupName
        if not is_valid_user_name(group):
            return "INVALID_RG_NAME", None
        try:
            group_id = uuid.UUID(config.readerGroupId)
        except ValueError:
            raise InvalidArgumentError(f"readerGroupId {config.readerGroupId!r} is not a UUID") from None
        if not config.startingStreamCuts:
            raise InvalidArgumentError("a reader group needs at least one stream (startingStreamCuts is empty)")
        async with self.ctx.lock(scope, "readergroup:" + group):
            if not await self.ctx.store.scope_exists(scope):
                return "SCOPE_NOT_FOUND", None
            stored = await self._stored(scope, group)
            if stored is not None:
                return "SUCCESS", stored[0]
            final = pb.ReaderGroupConfiguration()
            final.CopyFrom(config)
            if group_id == NIL_UUID:
                final.readerGroupId = str(uuid.uuid4())
                final.generation = 0
            await self._index(scope).insert(group, {"config": final.SerializeToString()})
            await self._subscribe(final)
            await self.streams.create_stream(scope, READER_GROUP_STREAM_PREFIX + group, StreamConfiguration())
            return "SUCCESS", final

    async def _subscribe(self, config: pb.ReaderGroupConfiguration) -> None:
        if config.retentionType == 0:
            return
        for cut in config.startingStreamCuts:
            info = cut.streamInfo
            try:
                table = (await self.ctx.view(info.scope, info.stream)).table
            except StreamNotFoundError:
                continue
            await table.put(SUBSCRIBER_PREFIX + _subscriber(config.scope, config.readerGroupName),
                            {"id": config.readerGroupId, "generation": config.generation, "cut": {}})

    async def _unsubscribe(self, config: pb.ReaderGroupConfiguration) -> None:
        for cut in config.startingStreamCuts:
            info = cut.streamInfo
            try:
                table = (await self.ctx.view(info.scope, info.stream)).table
                await table.remove(SUBSCRIBER_PREFIX + _subscriber(config.scope, config.readerGroupName))
            except StreamNotFoundError:
                continue

    async def get(self, scope: str, group: str) -> tuple[str, pb.ReaderGroupConfiguration | None]:
        stored = await self._stored(scope, group)
        return ("RG_NOT_FOUND", None) if stored is None else ("SUCCESS", stored[0])

    async def update(self, config: pb.ReaderGroupConfiguration) -> tuple[str, int]:
        scope, group = config.scope, config.readerGroupName
        async with self.ctx.lock(scope, "readergroup:" + group):
            stored = await self._stored(scope, group)
            if stored is None:
                return "RG_NOT_FOUND", 0
            current, version = stored
            if config.generation != current.generation or config.readerGroupId != current.readerGroupId:
                return "INVALID_CONFIG", current.generation
            final = pb.ReaderGroupConfiguration()
            final.CopyFrom(config)
            final.generation = current.generation + 1
            await self._index(scope).put(group, {"config": final.SerializeToString()}, version)
            await self._unsubscribe(current)
            await self._subscribe(final)
            return "SUCCESS", final.generation

    async def delete(self, scope: str, group: str, group_id: str) -> str:
        if not group_id:
            raise InvalidArgumentError("deleteReaderGroup needs the readerGroupId")
        async with self.ctx.lock(scope, "readergroup:" + group):
            stored = await self._stored(scope, group)
            if stored is None or stored[0].readerGroupId != group_id:
                return "RG_NOT_FOUND"
            await self._unsubscribe(stored[0])
            await self.streams.delete_internal_stream(scope, READER_GROUP_STREAM_PREFIX + group)
            await self._index(scope).remove(group)
            return "SUCCESS"

    async def list_subscribers(self, scope: str, stream: str) -> list[str]:
        view = await self.ctx.view(scope, stream)
        prefix = SUBSCRIBER_PREFIX.encode()
        return sorted([k[len(prefix):].decode() async for k, _v, _ver in view.table.items() if k.startswith(prefix)])

    async def update_subscriber_cut(self, scope: str, stream: str, subscriber: str, group_id: str, generation: int,
                                    cut: Mapping[int, int]) -> str:
        try:
            view = await self.ctx.view(scope, stream)
        except StreamNotFoundError:
            return "STREAM_NOT_FOUND"
        found = await view.table.get(SUBSCRIBER_PREFIX + subscriber)
        if found is None or found[0]["id"] != group_id:
            return "SUBSCRIBER_NOT_FOUND"
        record, version = found
        if generation != record["generation"]:
            return "GENERATION_MISMATCH"
        if not is_cut_valid(cut, all_segments(await self.ctx.all_epochs(view))):
            return "STREAM_CUT_NOT_VALID"
        record["cut"] = dict(cut)
        await view.table.put(SUBSCRIBER_PREFIX + subscriber, record, version)
        return "SUCCESS"
