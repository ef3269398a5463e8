"""A minimal in-memory stand-in for SegmentStore, only for the table engine's unit tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from anabranch.segmentstore.errors import (
    BadOffsetError,
    NoSuchSegmentError,
    SegmentExistsError,
    SegmentTruncatedError,
)


@dataclass
class _Result:
    new_length: int = 0
    previous_event_number: int = 0


@dataclass
class _Read:
    data: bytes
    at_tail: bool
    end_of_segment: bool


@dataclass
class _Info:
    name: str
    length: int
    start_offset: int = 0


class FakeSegmentStore:
    def __init__(self, read_chunk: int = 1 << 30) -> None:
        self.segments: dict[str, bytearray] = {}
        self.start_offsets: dict[str, int] = {}
        self.read_chunk = read_chunk
        self.appends = 0

    def _get(self, name: str) -> bytearray:
        if name not in self.segments:
            raise NoSuchSegmentError(name)
        return self.segments[name]

    async def create_segment(self, name: str, **_: object) -> None:
        if name in self.segments:
            raise SegmentExistsError(name)
        self.segments[name] = bytearray()
        self.start_offsets[name] = 0

    async def delete(self, name: str) -> None:
        self._get(name)
        del self.segments[name]
        del self.start_offsets[name]

    async def append(self, name: str, data: bytes, *, expected_offset: int | None = None, **_: object) -> _Result:
        await asyncio.sleep(0)  # a real store suspends here: let other tasks interleave
        segment = self._get(name)
        if expected_offset is not None and expected_offset != len(segment):
            raise BadOffsetError(name, len(segment), "offset mismatch")
        segment += data
        self.appends += 1
        return _Result(len(segment))

    async def read(self, name: str, offset: int, max_length: int, **_: object) -> _Read:
        await asyncio.sleep(0)
        segment = self._get(name)
        if offset < self.start_offsets[name]:
            raise SegmentTruncatedError(name, self.start_offsets[name])
        data = bytes(segment[offset : offset + min(max_length, self.read_chunk)])
        return _Read(data, offset + len(data) >= len(segment), False)

    async def truncate(self, name: str, offset: int) -> None:
        segment = self._get(name)
        if not self.start_offsets[name] <= offset <= len(segment):
            raise BadOffsetError(name, self.start_offsets[name], "truncate out of range")
        self.start_offsets[name] = offset

    async def get_info(self, name: str) -> _Info:
        return _Info(name, len(self._get(name)), self.start_offsets[name])
