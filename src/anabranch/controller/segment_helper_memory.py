"""An in-memory ``SegmentStoreOps`` for unit tests of the controller (no sockets, same semantics).

Segments are lengths plus flags (no bytes); ``append`` grows one for tests. Table versions grow
monotonically across all updates of a table, like offsets in Pravega's table segments. Conditional
batches are atomic: either every key matches its version or nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from anabranch.controller.errors import (
    BadOffsetError,
    NoSuchSegmentError,
    SegmentExistsError,
    SegmentSealedError,
    TableNotEmptyError,
    WriteConflictError,
)
from anabranch.controller.segment_helper import SegmentInfo, TableEntryTuple
from anabranch.protocol.commands import NO_VERSION, NOT_EXISTS


@dataclass
class _Segment:
    length: int = 0
    start: int = 0
    sealed: bool = False
    scale_type: int = 0
    target_rate: int = 0


@dataclass
class _Table:
    entries: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    next_version: int = 0


class InMemorySegmentStore:
    """``SegmentStoreOps`` kept in dictionaries; ``calls`` counts requests by name for assertions."""

    def __init__(self) -> None:
        self.segments: dict[str, _Segment] = {}
        self.tables: dict[str, _Table] = {}
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _segment(self, name: str) -> _Segment:
        seg = self.segments.get(name)
        if seg is None:
            raise NoSuchSegmentError(name, "no such segment")
        return seg

    def _table(self, name: str) -> _Table:
        table = self.tables.get(name)
        if table is None:
            raise NoSuchSegmentError(name, "no such table segment")
        return table

    def append(self, name: str, length: int) -> None:
        seg = self._segment(name)
        if seg.sealed:
            raise SegmentSealedError(name, "segment is sealed")
        seg.length += length

    async def create_segment(self, name: str, scale_type: int = 0, target_rate: int = 0,
                             rollover_size_bytes: int = 0) -> None:
        self._count("create_segment")
        if name in self.tables:
            raise SegmentExistsError(name, "a table segment has that name")
        self.segments.setdefault(name, _Segment(scale_type=scale_type, target_rate=target_rate))

    async def seal_segment(self, name: str) -> None:
        self._count("seal_segment")
        self._segment(name).sealed = True

    async def truncate_segment(self, name: str, offset: int) -> None:
        self._count("truncate_segment")
        seg = self._segment(name)
        if not seg.start <= offset <= seg.length:
            raise BadOffsetError(name, f"offset {offset} outside [{seg.start}, {seg.length}]")
        seg.start = offset

    async def delete_segment(self, name: str) -> None:
        self._count("delete_segment")
        self.segments.pop(name, None)

    async def update_segment_policy(self, name: str, scale_type: int, target_rate: int) -> None:
        self._count("update_segment_policy")
        seg = self._segment(name)
        seg.scale_type, seg.target_rate = scale_type, target_rate

    async def merge_segments_batch(self, target: str, sources: Sequence[str]) -> list[int]:
        self._count("merge_segments_batch")
        tgt = self._segment(target)
        offsets = []
        for source in sources:
            src = self.segments.get(source)
            if src is not None:
                if tgt.sealed:
                    raise SegmentSealedError(target, "target segment is sealed")
                tgt.length += src.length - src.start
                del self.segments[source]
            offsets.append(tgt.length)
        return offsets

    async def get_segment_info(self, name: str) -> SegmentInfo:
        seg = self._segment(name)
        return SegmentInfo(name, seg.length, seg.start, seg.sealed)

    async def read_segment(self, name: str, offset: int, length: int) -> bytes:
        """Zero bytes (segments here hold no data; zeros read as an empty event's header)."""
        self._count("read_segment")
        seg = self._segment(name)
        if offset < seg.start or offset > seg.length:
            raise BadOffsetError(name, f"offset {offset} outside [{seg.start}, {seg.length}]")
        return bytes(min(length, seg.length - offset))

    async def create_table(self, name: str, key_length: int = 0) -> bool:
        self._count("create_table")
        if name in self.segments:
            raise SegmentExistsError(name, "a stream segment has that name")
        if name in self.tables:
            return False
        self.tables[name] = _Table()
        return True

    async def delete_table(self, name: str, must_be_empty: bool = False) -> None:
        self._count("delete_table")
        table = self.tables.get(name)
        if table is None:
            return
        if must_be_empty and table.entries:
            raise TableNotEmptyError(name, "table segment is not empty")
        del self.tables[name]

    def _check(self, table: _Table, name: str, key: bytes, version: int) -> None:
        current = table.entries.get(key)
        if version == NO_VERSION:
            return
        if version == NOT_EXISTS:
            if current is not None:
                raise WriteConflictError(f"key exists in {name}")
        elif current is None or current[1] != version:
            raise WriteConflictError(f"key missing or version mismatch in {name}")

    async def update_table(self, name: str, entries: Sequence[TableEntryTuple]) -> list[int]:
        self._count("update_table")
        table = self._table(name)
        for key, _value, version in entries:
            self._check(table, name, key, version)
        versions = []
        for key, value, _version in entries:
            table.entries[key] = (value, table.next_version)
            versions.append(table.next_version)
            table.next_version += len(key) + len(value) + 16
        return versions

    async def remove_keys(self, name: str, keys: Sequence[tuple[bytes, int]]) -> None:
        self._count("remove_keys")
        table = self._table(name)
        for key, version in keys:
            self._check(table, name, key, version)
        for key, _version in keys:
            table.entries.pop(key, None)
            table.next_version += len(key) + 16

    async def read_table(self, name: str, keys: Sequence[bytes]) -> list[tuple[bytes, int] | None]:
        self._count("read_table")
        table = self._table(name)
        return [table.entries.get(key) for key in keys]

    async def read_entries(self, name: str, token: bytes, count: int) -> tuple[list[TableEntryTuple], bytes]:
        self._count("read_entries")
        table = self._table(name)
        keys = sorted(k for k in table.entries if not token or k > token)[:count]
        page = [(k, *table.entries[k]) for k in keys]
        return page, (keys[-1] if keys else token)

    async def close(self) -> None:
        return None
