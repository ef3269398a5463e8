"""Exact lag: how many events and bytes lie between read positions and the tails (or the ending stream cuts).

Bytes come from the segments' write offsets; events are counted by reading the unread ranges (headers only
matter, but the bytes must be fetched), so ``count_events=False`` is the cheap form. A group's lag covers every
segment still to be read — the ones held or unassigned at their positions, and the successors not reached yet
(through any number of scales), found with the controller's ``getSegmentsBetween``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from anabranch.client.batch import BatchClient, SegmentRange
from anabranch.client.stream_positions import segment_info
from anabranch.model.names import ScopedSegment
from anabranch.model.stream_cut import StreamCut


@dataclass(frozen=True, slots=True)
class Lag:
    """Unread events and bytes (``events`` is -1 when not counted)."""

    events: int
    bytes: int

    def __add__(self, other: Lag) -> Lag:
        events = -1 if self.events < 0 or other.events < 0 else self.events + other.events
        return Lag(events, self.bytes + other.bytes)


NO_LAG = Lag(0, 0)


async def ranges_lag(batch: BatchClient, ranges: Iterable[SegmentRange], *, count_events: bool = True) -> Lag:
    total = NO_LAG if count_events else Lag(-1, 0)
    for segment_range in ranges:
        events = await batch.count_events(segment_range) if count_events else -1
        total = total + Lag(events, segment_range.length)
    return total


async def segments_lag(batch: BatchClient, positions: Mapping[ScopedSegment, int],
                       end_offsets: Mapping[ScopedSegment, int], *, count_events: bool = True) -> Lag:
    """The lag of exactly these segments, each from its position to its tail (or end offset)."""
    ranges = []
    for segment, offset in positions.items():
        info = await segment_info(batch.router, segment.qualified_name)
        if info is None:
            continue
        end = min(info.write_offset, end_offsets.get(segment, info.write_offset))
        start = max(offset, info.start_offset)
        if end > start:
            ranges.append(SegmentRange(segment, start, end))
    return await ranges_lag(batch, ranges, count_events=count_events)


async def stream_lag(batch: BatchClient, start: StreamCut, end: StreamCut | None, *,
                     count_events: bool = True) -> Lag:
    """The lag of a stream from the cut ``start`` to ``end`` (None: the tail), successors included."""
    ranges = await batch.list_segments(start.scope, start.stream, start, end)
    return await ranges_lag(batch, ranges, count_events=count_events)
