"""Helpers for tests through a real segment-store process: events, whole-segment reads, connections."""

from __future__ import annotations

import struct
import uuid

from anabranch.client.connection import RawConnection, next_request_id
from anabranch.protocol.commands import (
    AppendSetup,
    CreateSegment,
    ReadSegment,
    SegmentCreated,
    SegmentRead,
    SetupAppend,
)
from anabranch.testing.processes import HOST, SegmentStoreProcess

EVENT_HEADER = struct.Struct(">ii")


def event(payload: bytes) -> bytes:
    return EVENT_HEADER.pack(0, len(payload)) + payload


def parse_events(data: bytes) -> list[bytes]:
    events = []
    position = 0
    while position < len(data):
        kind, length = EVENT_HEADER.unpack_from(data, position)
        assert kind == 0, f"bad event header at {position}"
        events.append(data[position + 8 : position + 8 + length])
        position += 8 + length
    assert position == len(data)
    return events


async def connect(server: SegmentStoreProcess) -> RawConnection:
    return await RawConnection.connect(HOST, server.segmentstore_port)


async def create_segment(conn: RawConnection, segment: str) -> None:
    reply = await conn.request(CreateSegment(next_request_id(), segment))
    assert isinstance(reply, SegmentCreated), reply


async def setup_append(conn: RawConnection, writer_id: uuid.UUID, segment: str) -> int:
    reply = await conn.request(SetupAppend(next_request_id(), writer_id, segment, ""))
    assert isinstance(reply, AppendSetup), reply
    return reply.last_event_number


async def read_all(conn: RawConnection, segment: str, start: int = 0) -> bytes:
    parts = []
    offset = start
    while True:
        reply = await conn.request(ReadSegment(segment, offset, 2 * 1024 * 1024, "", next_request_id()))
        assert isinstance(reply, SegmentRead), reply
        parts.append(reply.data)
        offset += len(reply.data)
        if reply.at_tail or reply.end_of_segment:
            return b"".join(parts)
