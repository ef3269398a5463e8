"""Key-value tables: metadata in the scope's ``kvTables`` index (the config's proto bytes), data in
``partitionCount`` table segments ``<scope>/<kvt>_kvtable/<n>.#epoch.0`` covering equal key ranges.

Creation is a resumable workflow: the index entry is written first, marked ``creating``, then the partitions are
created, then the mark is dropped. A table still marked is invisible (its config and segments answer not found);
a crash, a failed request or a client that gave up leaves the mark, and the controller's sweep (``resume_all``)
or the next create of the same table finishes it. Deleting a marked table removes whatever partitions exist.
So a failed or abandoned create never leaves orphan table segments behind. Limits (``controller.validation``)
are checked when the request enters, before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from anabranch.controller.context import ControllerContext
from anabranch.controller.epochs import SegmentRecord, first_epoch
from anabranch.controller.errors import InvalidArgumentError, NoSuchSegmentError, NotFoundError
from anabranch.controller.validation import MAX_KVT_PARTITIONS
from anabranch.model.keyspace import initial_ranges
from anabranch.model.names import KVTABLE_SUFFIX, is_valid_user_name, qualified_segment_name, segment_id
from anabranch.protocol import controller_pb2 as pb

log = logging.getLogger(__name__)

CREATE_BATCH = 32
"""Partitions created (or deleted) concurrently."""


def kvt_segment_name(scope: str, kvt: str, number: int) -> str:
    return qualified_segment_name(scope, kvt + KVTABLE_SUFFIX, segment_id(number, 0))


class KeyValueTables:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx

    async def create(self, config: pb.KeyValueTableConfig) -> str:
        if not 0 < config.partitionCount <= MAX_KVT_PARTITIONS or config.primaryKeyLength < 0 \
                or config.secondaryKeyLength < 0 or config.rolloverSizeBytes < 0:
            raise InvalidArgumentError(f"partitionCount must be in [1, {MAX_KVT_PARTITIONS}]; key lengths and "
                                       "rolloverSizeBytes >= 0")
        scope, kvt = config.scope, config.kvtName
        if not is_valid_user_name(kvt):
            return "INVALID_TABLE_NAME"
        # Shielded: a client that gives up (deadline, cancel) does not interrupt the workflow half way.
        return await asyncio.shield(self._create(config, scope, kvt))

    async def _create(self, config: pb.KeyValueTableConfig, scope: str, kvt: str) -> str:
        async with self.ctx.lock(scope, "kvtable:" + kvt):
            if not await self.ctx.store.scope_exists(scope):
                return "SCOPE_NOT_FOUND"
            index = self.ctx.store.scope_index(scope, "kvTables")
            found = await index.get_value(kvt)
            if found is not None:
                if not found.get("creating"):
                    return "TABLE_EXISTS"
                stored = pb.KeyValueTableConfig.FromString(found["config"])
                await self._finish_create(scope, kvt, stored, found)
                return "SUCCESS" if stored == config else "TABLE_EXISTS"
            record = {"config": config.SerializeToString(), "created": self.ctx.wall_ms(), "creating": True}
            await index.insert(kvt, record)
            await self._finish_create(scope, kvt, config, record)
            return "SUCCESS"

    async def _finish_create(self, scope: str, kvt: str, config: pb.KeyValueTableConfig,
                             record: dict[str, Any]) -> None:
        key_length = config.primaryKeyLength + config.secondaryKeyLength
        await self._each_partition(config.partitionCount, lambda n: self.ctx.ops.create_table(
            kvt_segment_name(scope, kvt, n), key_length))
        done = {k: v for k, v in record.items() if k != "creating"}
        await self.ctx.store.scope_index(scope, "kvTables").put(kvt, done)

    @staticmethod
    async def _each_partition(count: int, action: Callable[[int], Awaitable[object]]) -> None:
        for first in range(0, count, CREATE_BATCH):
            await asyncio.gather(*(action(n) for n in range(first, min(count, first + CREATE_BATCH))))

    async def _stored(self, scope: str, kvt: str) -> tuple[pb.KeyValueTableConfig, bool] | None:
        """(config, still being created) of a table, None if there is none."""
        if not await self.ctx.store.scope_exists(scope):
            return None
        found = await self.ctx.store.scope_index(scope, "kvTables").get_value(kvt)
        if found is None:
            return None
        return pb.KeyValueTableConfig.FromString(found["config"]), bool(found.get("creating"))

    async def config(self, scope: str, kvt: str) -> pb.KeyValueTableConfig:
        if not await self.ctx.store.scope_exists(scope):
            raise NotFoundError(f"scope {scope} does not exist")
        stored = await self._stored(scope, kvt)
        if stored is None or stored[1]:
            raise NotFoundError(f"key-value table {scope}/{kvt} does not exist")
        return stored[0]

    async def segments(self, scope: str, kvt: str) -> list[SegmentRecord]:
        config = await self.config(scope, kvt)
        return list(first_epoch(initial_ranges(config.partitionCount), 0, 0).segments)

    async def delete(self, scope: str, kvt: str) -> str:
        async with self.ctx.lock(scope, "kvtable:" + kvt):
            stored = await self._stored(scope, kvt)
            if stored is None:
                return "TABLE_NOT_FOUND"
            await self._each_partition(stored[0].partitionCount,
                                       lambda n: self.ctx.ops.delete_table(kvt_segment_name(scope, kvt, n)))
            await self.ctx.store.scope_index(scope, "kvTables").remove(kvt)
            return "SUCCESS"

    async def resume_all(self) -> None:
        """The sweep: finish every create a crash, a failure or an abandoned request left marked."""
        async for scope_key, _value, _version in self.ctx.store.scopes.items():
            scope = scope_key.decode()
            try:
                entries = [(k.decode(), v) async for k, v, _ver in
                           self.ctx.store.scope_index(scope, "kvTables").items()]
            except NoSuchSegmentError:
                continue
            for kvt, value in entries:
                if isinstance(value, dict) and value.get("creating"):
                    try:
                        await self._create(pb.KeyValueTableConfig.FromString(value["config"]), scope, kvt)
                    except Exception:
                        log.exception("could not finish creating key-value table %s/%s", scope, kvt)
