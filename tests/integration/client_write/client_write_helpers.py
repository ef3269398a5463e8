"""Reading a stream back with raw segment reads (GetStreamSegmentInfo + ReadSegment), for verification."""

from __future__ import annotations

import functools

from anabranch.client.stream_manager import StreamManager
from anabranch.protocol import commands as wire


def _info(segment: str, request_id: int) -> wire.GetStreamSegmentInfo:
    return wire.GetStreamSegmentInfo(request_id, segment, "")


def _read(segment: str, offset: int, request_id: int) -> wire.ReadSegment:
    return wire.ReadSegment(segment, offset, 1 << 20, "", request_id)


async def segment_bytes(manager: StreamManager, segment: str) -> bytes:
    """Every byte of a segment from its start offset to its current length."""
    info = await manager.router.request(segment, functools.partial(_info, segment))
    if isinstance(info, wire.NoSuchSegment):
        return b""
    assert isinstance(info, wire.StreamSegmentInfo), info
    data = bytearray()
    offset = info.start_offset
    while offset < info.write_offset:
        reply = await manager.router.request(segment, functools.partial(_read, segment, offset))
        assert isinstance(reply, wire.SegmentRead), reply
        data += reply.data
        offset += len(reply.data)
    return bytes(data)


def split_events(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        assert data[pos:pos + 4] == b"\0\0\0\0"
        length = int.from_bytes(data[pos + 4:pos + 8], "big")
        out.append(data[pos + 8:pos + 8 + length])
        pos += 8 + length
    return out


async def events_by_segment(manager: StreamManager, scope: str, stream: str, max_epoch: int = 8,
                            max_number: int = 64) -> dict[str, list[bytes]]:
    """Events of every segment id that exists, probing numbers < max_number in epochs ≤ max_epoch."""
    found: dict[str, list[bytes]] = {}
    for epoch in range(max_epoch + 1):
        for number in range(max_number):
            name = f"{scope}/{stream}/{number}.#epoch.{epoch}"
            data = await segment_bytes(manager, name)
            if data:
                found[name] = split_events(data)
    return found
