"""Why a truncation stream cut is refused, if it is: the checks of the truncate workflow, each with a reason.

A cut is accepted when:
- it names only segments the stream had, covers the key space [0, 1) exactly once (``epochs.is_cut_valid``)
  and has no negative offsets;
- it is not behind the stream's current head (the previous truncation) anywhere in the key space;
- each offset lies between the segment's start offset (its head) and its length (its tail);
- each offset strictly inside a segment is at an event boundary: Pravega's readers produce cuts at event starts,
  so the 8 bytes there must be an event header (type 0, a length that ends within the segment). A cut inside an
  event would make every later read from the head fail. A segment written as raw bytes (a byte stream) can be
  truncated through the controller only at its head or tail; byte-stream clients truncate their segment directly.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from anabranch.controller.context import ControllerContext, StreamView
from anabranch.controller.epochs import SegmentRecord, cut_not_behind, is_cut_valid
from anabranch.controller.errors import BadOffsetError, NoSuchSegmentError

EVENT_HEADER = struct.Struct(">ii")
"""Type and length of an ``Event`` wire command, as stored in a segment before each event's payload."""
EVENT_TYPE = 0


def _cut_text(cut: Mapping[int, int]) -> str:
    text = ", ".join(f"{seg_id}: {offset}" for seg_id, offset in sorted(cut.items())[:8])
    return "{" + text + (", ..." if len(cut) > 8 else "") + "}"


async def truncation_problem(ctx: ControllerContext, view: StreamView, cut: Mapping[int, int],
                             segments: Mapping[int, SegmentRecord], previous: Mapping[int, int] | None) -> str | None:
    """The reason ``cut`` cannot truncate the stream of ``view``, or None when it can."""
    stream = f"{view.scope}/{view.stream}"
    unknown = sorted(seg_id for seg_id in cut if seg_id not in segments)
    if unknown:
        return f"the cut names segment {unknown[0]}, which stream {stream} never had"
    negative = sorted(seg_id for seg_id, offset in cut.items() if offset < 0)
    if negative:
        return f"the cut gives segment {negative[0]} a negative offset"
    if not is_cut_valid(cut, segments):
        return f"the cut {_cut_text(cut)} does not cover the key space [0, 1) exactly once"
    if previous is not None and not cut_not_behind(cut, previous, segments):
        return f"the cut is behind the stream's head (its previous truncation {_cut_text(previous)})"
    for seg_id, offset in sorted(cut.items()):
        if offset > 0:
            problem = await _offset_problem(ctx, view.segment_name(seg_id), seg_id, offset)
            if problem is not None:
                return problem
    return None


async def _offset_problem(ctx: ControllerContext, name: str, seg_id: int, offset: int) -> str | None:
    try:
        info = await ctx.ops.get_segment_info(name)
    except NoSuchSegmentError:
        return f"segment {seg_id} no longer exists (the stream was truncated past it)"
    if offset > info.length:
        return f"offset {offset} is beyond the tail of segment {seg_id} ({info.length} bytes written)"
    if offset < info.start_offset:
        return f"offset {offset} is behind the head of segment {seg_id} (truncated at {info.start_offset})"
    if offset in (info.start_offset, info.length):
        return None
    try:
        header = await ctx.ops.read_segment(name, offset, EVENT_HEADER.size)
    except BadOffsetError:
        return f"offset {offset} of segment {seg_id} is no longer readable"
    if len(header) == EVENT_HEADER.size:
        kind, length = EVENT_HEADER.unpack(header)
        if kind == EVENT_TYPE and 0 <= length <= info.length - offset - EVENT_HEADER.size:
            return None
    return f"offset {offset} of segment {seg_id} is not at an event boundary (no event header there)"
