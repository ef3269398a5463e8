"""Where a stream's data lies: one segment's info, and the tail of a stream (its current segments' lengths)."""

from __future__ import annotations

from anabranch.client.controller_client import ControllerClient
from anabranch.client.segment_reader import SegmentRouter
from anabranch.protocol.commands import GetStreamSegmentInfo, StreamSegmentInfo


async def segment_info(router: SegmentRouter, segment: str) -> StreamSegmentInfo | None:
    """The segment's info (start and write offsets, sealed), or None if the segment store refuses."""
    reply = await router.request(segment, lambda rid: GetStreamSegmentInfo(rid, segment, router.delegation_token))
    return reply if isinstance(reply, StreamSegmentInfo) else None


async def tail_positions(controller: ControllerClient, router: SegmentRouter, scope: str,
                         stream: str) -> dict[int, int]:
    """Current segment id → write offset (empty for a sealed stream)."""
    tail = {}
    for current in await controller.get_current_segments(scope, stream):
        info = await segment_info(router, current.qualified_name)
        tail[current.segment_id] = info.write_offset if info is not None else 0
    return tail
