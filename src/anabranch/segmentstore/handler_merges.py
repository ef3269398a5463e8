"""MergeSegments / MergeSegmentsBatch (spec §5.1), with a bounded memory of recent merges.

A merge retried after its reply was lost (the client reconnected) finds its source gone; when this server
merged that source into the same target recently, the retry is answered ``SegmentsMerged`` with the target's
current length instead of ``NoSuchSegment``. The memory is per process and bounded (oldest forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from anabranch.protocol.commands import (
    ConditionalAttributeUpdate,
    MergeSegments,
    MergeSegmentsBatch,
    Reply,
    SegmentAttributeUpdated,
    SegmentsBatchMerged,
    SegmentsMerged,
)
from anabranch.segmentstore.errors import NoSuchSegmentError

if TYPE_CHECKING:
    from anabranch.segmentstore.store import SegmentStore
    from anabranch.segmentstore.tables import TableStore


class MergeHistory:
    """Which target each recently merged source went into (at most ``capacity`` sources)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._targets: OrderedDict[str, str] = OrderedDict()

    def record(self, target: str, source: str) -> None:
        self._targets[source] = target
        self._targets.move_to_end(source)
        while len(self._targets) > self._capacity:
            self._targets.popitem(last=False)

    def merged_into(self, source: str) -> str | None:
        return self._targets.get(source)


async def merge(store: SegmentStore, tables: TableStore, history: MergeHistory, request: MergeSegments) -> Reply:
    if request.attribute_updates:
        updates = [
            (
                u.attribute_id,
                u.new_value,
                u.old_value if u.update_type == ConditionalAttributeUpdate.REPLACE_IF_EQUALS else None,
            )
            for u in request.attribute_updates
        ]
        if not await store.update_attributes(request.target, updates):
            return SegmentAttributeUpdated(request.request_id, False)
    try:
        new_length = await store.merge(request.target, request.source)
    except NoSuchSegmentError as exc:
        if exc.segment != request.source or history.merged_into(request.source) != request.target:
            raise
        new_length = (await store.get_info(request.target)).length
    history.record(request.target, request.source)
    tables.forget(request.source)
    return SegmentsMerged(request.request_id, request.target, request.source, new_length)


async def merge_batch(
    store: SegmentStore, tables: TableStore, history: MergeHistory, request: MergeSegmentsBatch
) -> Reply:
    offsets = await store.merge_batch(request.target, list(request.sources))
    for source in request.sources:
        history.record(request.target, source)
        tables.forget(source)
    return SegmentsBatchMerged(request.request_id, request.target, tuple(zip(request.sources, offsets, strict=True)))
