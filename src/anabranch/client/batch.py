"""Batch reading: the segment ranges between two stream cuts, each readable on its own, without a reader group.

``BatchClient.list_segments`` returns every segment holding data between a start cut (default: the head) and an
end cut (default: the tail), each with the byte range to read (``start_offset``..``end_offset``) and its length.
Ranges are independent: hand them to many processes and read each with ``read_segment``, an async iterator over
its events (in order within the range). Across ranges there is no order; per-key order holds within a segment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from anabranch.client.controller_client import ControllerClient
from anabranch.client.event_pointer import EventPointer
from anabranch.client.segment_reader import SegmentReader, SegmentRouter
from anabranch.client.serializers import BytesSerializer, Serializer
from anabranch.client.stream_positions import segment_info, tail_positions
from anabranch.model.names import ScopedSegment
from anabranch.model.stream_cut import StreamCut


@dataclass(frozen=True, slots=True)
class SegmentRange:
    """The bytes ``start_offset``..``end_offset`` of one segment."""

    segment: ScopedSegment
    start_offset: int
    end_offset: int

    @property
    def length(self) -> int:
        return self.end_offset - self.start_offset


@dataclass(frozen=True, slots=True)
class BatchEvent:
    """One event of a segment range, with its pointer."""

    event: Any
    pointer: EventPointer


class BatchClient:
    """Lists and reads segment ranges; create it with ``StreamManager.batch_client()``."""

    def __init__(self, controller: ControllerClient, router: SegmentRouter) -> None:
        self.controller = controller
        self.router = router

    async def list_segments(self, scope: str, stream: str, start: StreamCut | None = None,
                            end: StreamCut | None = None) -> list[SegmentRange]:
        """The segments with data between ``start`` (default: the head) and ``end`` (default: the tail), in
        segment-id order, each with the range to read. Empty ranges are left out."""
        start = start if start is not None and not start.is_unbounded else StreamCut(
            scope, stream, await self.controller.get_head_segments(scope, stream))
        if end is None or end.is_unbounded:
            end = StreamCut(scope, stream, await tail_positions(self.controller, self.router, scope, stream))
        ids = await self.controller.get_segments_between(start, end)
        ranges = []
        for segment_id in sorted(ids):
            segment = ScopedSegment(scope, stream, segment_id)
            info = await segment_info(self.router, segment.qualified_name)
            if info is None:
                continue
            first = max(start.positions.get(segment_id, 0), info.start_offset)
            last = end.positions.get(segment_id, -1)
            last = info.write_offset if last < 0 else min(last, info.write_offset)
            if last > first:
                ranges.append(SegmentRange(segment, first, last))
        return ranges

    async def count_events(self, segment_range: SegmentRange) -> int:
        """How many events ``segment_range`` holds (reads the range)."""
        reader = SegmentReader(self.router, segment_range.segment.qualified_name, segment_range.start_offset,
                               segment_range.end_offset)
        count = 0
        try:
            while not reader.at_end:
                count += len((await reader.read_block()).events)
        finally:
            await reader.close()
        return count

    async def read_segment(self, segment_range: SegmentRange,
                           serializer: Serializer[Any] | None = None) -> AsyncIterator[BatchEvent]:
        """The events of ``segment_range`` in order, each with its pointer."""
        deserialize = (serializer or BytesSerializer()).deserialize
        segment = segment_range.segment
        reader = SegmentReader(self.router, segment.qualified_name, segment_range.start_offset,
                               segment_range.end_offset)
        try:
            while not reader.at_end:
                block = await reader.read_block()
                for i, (event, offset) in enumerate(zip(block.events, block.offsets, strict=True)):
                    after = block.offsets[i + 1] if i + 1 < len(block.offsets) else block.end
                    yield BatchEvent(deserialize(event), EventPointer(segment, offset, after - offset))
        finally:
            await reader.close()
