"""Event pointers: where one event lies (segment, offset, length), and fetching that one event again.

Every ``EventRead`` of a reader carries a pointer; ``StreamManager.read_event(pointer)`` (or
``fetch_event`` with any ``SegmentRouter``) reads exactly that event, even from another process: a pointer
round-trips through ``str()`` / ``EventPointer.parse``.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from anabranch.client.errors import NoSuchSegmentError, SegmentTruncatedError, error_from_reply
from anabranch.client.segment_reader import SegmentRouter
from anabranch.errors import DataCorruptionError, InvalidNameError
from anabranch.model.names import ScopedSegment
from anabranch.protocol.commands import NoSuchSegment, ReadSegment, SegmentIsTruncated, SegmentRead

EVENT_HEADER = struct.Struct(">ii")


@dataclass(frozen=True, slots=True)
class EventPointer:
    """One event: ``length`` bytes (header included) at ``offset`` of ``segment``."""

    segment: ScopedSegment
    offset: int
    length: int

    def __str__(self) -> str:
        return f"{self.segment.qualified_name}@{self.offset}+{self.length}"

    @classmethod
    def parse(cls, text: str) -> EventPointer:
        """The pointer ``str(pointer)`` printed."""
        try:
            name, rest = text.rsplit("@", 1)
            offset, length = rest.split("+", 1)
            return cls(ScopedSegment.parse(name), int(offset), int(length))
        except ValueError as exc:
            raise InvalidNameError(f"not an event pointer: {text!r} (expected scope/stream/segment@offset+length)") \
                from exc


def _read(segment: str, offset: int, length: int, token: str, request_id: int) -> ReadSegment:
    return ReadSegment(segment, offset, length, token, request_id)


async def fetch_event(router: SegmentRouter, pointer: EventPointer) -> bytes:
    """The payload of the event at ``pointer``; ``SegmentTruncatedError`` if retention removed it."""
    segment = pointer.segment.qualified_name
    data = b""
    while len(data) < pointer.length:
        offset = pointer.offset + len(data)
        wanted = pointer.length - len(data)
        reply = await router.request(
            segment, functools.partial(_read, segment, offset, wanted, router.delegation_token))
        if isinstance(reply, SegmentRead):
            if not reply.data and reply.end_of_segment:
                break
            data += reply.data
        elif isinstance(reply, SegmentIsTruncated):
            raise SegmentTruncatedError(f"the event at {pointer} was truncated away (the segment now starts at "
                                        f"{reply.start_offset})", reply.start_offset)
        elif isinstance(reply, NoSuchSegment):
            raise NoSuchSegmentError(f"the segment of event {pointer} no longer exists")
        else:
            raise error_from_reply(reply, f"reading the event at {pointer}")
    if len(data) < pointer.length:
        raise DataCorruptionError(f"{segment} ends before the event at {pointer} does")
    kind, size = EVENT_HEADER.unpack_from(data)
    if kind != 0 or size != pointer.length - EVENT_HEADER.size:
        raise DataCorruptionError(f"no event starts at {pointer} (header: type {kind}, length {size})")
    return data[EVENT_HEADER.size : pointer.length]
