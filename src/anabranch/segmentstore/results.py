"""Result values returned by the segment store API (frozen, no behaviour)."""

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
    data: Buffer
    at_tail: bool
    end_of_segment: bool


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
