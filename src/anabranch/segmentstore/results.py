"""Result values returned by the segment store API (frozen, no behaviour beyond joining read pieces)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from anabranch.storage.interfaces import Buffer


@dataclass(frozen=True, slots=True)
class AppendResult:
    new_length: int
    previous_event_number: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Bytes read: ``pieces`` are the contiguous buffers in order, views into the read index when the bytes are
    in memory (a reply sends them as they are, without copying); ``data`` joins them."""

    pieces: tuple[Buffer, ...]
    at_tail: bool
    end_of_segment: bool

    @property
    def data(self) -> Buffer:
        if len(self.pieces) == 1:
            return self.pieces[0]
        return b"".join(self.pieces)

    @property
    def size(self) -> int:
        return sum(p.nbytes if isinstance(p, memoryview) else len(p) for p in self.pieces)


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    name: str
    length: int
    start_offset: int
    sealed: bool
    deleted: bool
    last_modified_ms: int
    scale_type: int
    target_rate: int
    is_table: bool
    attributes: Mapping[uuid.UUID, int]
