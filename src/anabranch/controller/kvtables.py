"""Key-value tables: metadata in the scope's ``kvTables`` index (the config's proto bytes), data in
``partitionCount`` table segments ``<scope>/<kvt>_kvtable/<n>.#epoch.0`` covering equal key ranges.
"""

from __future__ import annotations

from anabranch.controller.context import ControllerContext
from anabranch.controller.epochs import SegmentRecord, first_epoch
from anabranch.controller.errors import InvalidArgumentError, NotFoundError
from anabranch.model.keyspace import initial_ranges
from anabranch.model.names import KVTABLE_SUFFIX, is_valid_user_name, qualified_segment_name, segment_id
from anabranch.protocol import controller_pb2 as pb


def kvt_segment_name(scope: str, kvt: str, number: int) -> str:
    return qualified_segment_name(scope, kvt + KVTABLE_SUFFIX, segment_id(number, 0))


class KeyValueTables:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx

    async def create(self, config: pb.KeyValueTableConfig) -> str:
        if config.partitionCount <= 0 or config.primaryKeyLength < 0 or config.secondaryKeyLength < 0 \
                or config.rolloverSizeBytes < 0:
            raise InvalidArgumentError("partitionCount must be > 0; key lengths and rolloverSizeBytes >= 0")
        scope, kvt = config.scope, config.kvtName
        if not is_valid_user_name(kvt):
            return "INVALID_TABLE_NAME"
        async with self.ctx.lock(scope, "kvtable:" + kvt):
            if not await self.ctx.store.scope_exists(scope):
                return "SCOPE_NOT_FOUND"
            index = self.ctx.store.scope_index(scope, "kvTables")
            if await index.get(kvt) is not None:
                return "TABLE_EXISTS"
            key_length = config.primaryKeyLength + config.secondaryKeyLength
            for n in range(config.partitionCount):
                await self.ctx.ops.create_table(kvt_segment_name(scope, kvt, n), key_length)
            await index.insert(kvt, {"config": config.SerializeToString(), "created": self.ctx.wall_ms()})
            return "SUCCESS"

    async def config(self, scope: str, kvt: str) -> pb.KeyValueTableConfig:
        if not await self.ctx.store.scope_exists(scope):
            raise NotFoundError(f"scope {scope} does not exist")
        found = await self.ctx.store.scope_index(scope, "kvTables").get_value(kvt)
        if found is None:
            raise NotFoundError(f"key-value table {scope}/{kvt} does not exist")
        return pb.KeyValueTableConfig.FromString(found["config"])

    async def segments(self, scope: str, kvt: str) -> list[SegmentRecord]:
        config = await self.config(scope, kvt)
        return list(first_epoch(initial_ranges(config.partitionCount), 0, 0).segments)

    async def delete(self, scope: str, kvt: str) -> str:
        async with self.ctx.lock(scope, "kvtable:" + kvt):
            try:
                config = await self.config(scope, kvt)
            except NotFoundError:
                return "TABLE_NOT_FOUND"
            for n in range(config.partitionCount):
                await self.ctx.ops.delete_table(kvt_segment_name(scope, kvt, n))
            await self.ctx.store.scope_index(scope, "kvTables").remove(kvt)
            return "SUCCESS"
