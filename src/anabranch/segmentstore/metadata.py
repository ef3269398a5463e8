"""Container metadata: per-segment state, its staged (queued, not yet durable) view, and checkpoints.

Each ``SegmentMetadata`` holds two views. The committed fields (``length``, ``sealed``,
``attributes``...) change only when an operation has been made durable by the log and is applied;
readers and ``get_info`` see only them. The staged fields (``staged_*``) change when an operation is
validated and queued, so that validation of later queued operations sees the effect of earlier
ones. Without a failure, staged == committed once the log is idle. ``storage_length`` is how many
bytes are already in LTS (moved forward by the storage writer, never by the log); ``storage_exists``
is not checkpointed: recovery learns it from LTS.
A checkpoint serializes the committed state (CBOR); loading one sets staged = committed.
Every segment stays in memory, so a ``SegmentMetadata`` is kept small: slots, no per-segment container for
what most segments lack (attributes are one shared empty mapping until the first is set, pending merges an
empty tuple), and the LTS name is derived from the name and id when needed rather than stored.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, overload

import cbor2

from anabranch.errors import DataCorruptionError
from anabranch.storage.cbor_stream import ARRAY_START, BREAK, items_until_break

_CHECKPOINT_VERSION = 1
_NO_ATTRIBUTES: Mapping[uuid.UUID, int] = MappingProxyType({})


@dataclass(slots=True)
class PendingMerge:
    """Bytes [target_offset, target_offset + lts_length) of a target still live in the source's LTS object."""

    target_offset: int
    source_lts_name: str
    lts_length: int
    length: int


class _Flag:
    """A boolean of ``SegmentMetadata`` kept as one bit of its ``_flags`` (six booleans cost one slot, not six)."""

    __slots__ = ("_bit",)

    def __init__(self, bit: int) -> None:
        self._bit = bit

    @overload
    def __get__(self, meta: None, owner: type) -> _Flag: ...

    @overload
    def __get__(self, meta: SegmentMetadata, owner: type) -> bool: ...

    def __get__(self, meta: SegmentMetadata | None, owner: type) -> bool | _Flag:
        if meta is None:
            return self
        return bool(meta._flags & self._bit)

    def __set__(self, meta: SegmentMetadata, value: bool) -> None:
        meta._flags = meta._flags | self._bit if value else meta._flags & ~self._bit


class SegmentMetadata:
    """One segment's committed and staged state (see the module docstring); every segment has one, so it is small."""

    __slots__ = ("_flags", "attributes", "created_ms", "last_modified_ms", "length", "name", "pending_merges",
                 "rollover_size", "scale_type", "segment_id", "staged_attributes", "staged_length",
                 "staged_start_offset", "start_offset", "storage_length", "storage_start_offset", "target_rate")

    is_table = _Flag(1)
    sealed = _Flag(2)
    deleted = _Flag(4)
    storage_sealed = _Flag(8)
    storage_exists = _Flag(16)
    """Not checkpointed: recovery learns it from LTS."""
    staged_sealed = _Flag(32)

    def __init__(self, segment_id: int, name: str, created_ms: int, scale_type: int = 0, target_rate: int = 0,
                 rollover_size: int = 0, is_table: bool = False, length: int = 0, start_offset: int = 0,
                 sealed: bool = False, deleted: bool = False, last_modified_ms: int = 0,
                 attributes: Mapping[uuid.UUID, int] = _NO_ATTRIBUTES, storage_length: int = 0,
                 storage_sealed: bool = False, storage_start_offset: int = 0,
                 pending_merges: tuple[PendingMerge, ...] = ()) -> None:
        self.segment_id = segment_id
        self.name = name
        self.created_ms = created_ms
        self.scale_type = scale_type
        self.target_rate = target_rate
        self.rollover_size = rollover_size
        self.length = length
        self.start_offset = start_offset
        self.last_modified_ms = last_modified_ms
        self.attributes = attributes
        self.storage_length = storage_length
        self.storage_start_offset = storage_start_offset
        self.pending_merges = pending_merges
        self._flags = 0
        self.is_table = is_table
        self.sealed = sealed
        self.deleted = deleted
        self.storage_sealed = storage_sealed
        self.staged_length = 0
        self.staged_start_offset = 0
        self.staged_attributes = _NO_ATTRIBUTES

    def __repr__(self) -> str:
        return (f"SegmentMetadata({self.segment_id}, {self.name!r}, length={self.length}, "
                f"storage_length={self.storage_length}, flags={self._flags:#x})")

    @property
    def lts_name(self) -> str:
        return lts_name_of(self.name, self.segment_id)

    def set_attribute(self, key: uuid.UUID, value: int | None) -> None:
        """Set (``None``: remove) a committed attribute."""
        self.attributes = _updated(self.attributes, key, value)

    def stage_attribute(self, key: uuid.UUID, value: int | None) -> None:
        """Set (``None``: remove) a staged attribute."""
        self.staged_attributes = _updated(self.staged_attributes, key, value)

    def reset_staged(self) -> None:
        self.staged_length = self.length
        self.staged_start_offset = self.start_offset
        self.staged_sealed = self.sealed
        self.staged_attributes = dict(self.attributes) if self.attributes else _NO_ATTRIBUTES

    @property
    def unflushed(self) -> bool:
        """Whether the storage writer has work for this segment."""
        return (
            self.storage_length < self.length
            or (self.sealed and not self.storage_sealed)
            or self.storage_start_offset < min(self.start_offset, self.storage_length)
        )


def _updated(attributes: Mapping[uuid.UUID, int], key: uuid.UUID, value: int | None) -> Mapping[uuid.UUID, int]:
    """``attributes`` with ``key`` set or removed: changed in place if it is a segment's own dict."""
    if value is None:
        if key in attributes:
            assert isinstance(attributes, dict)
            del attributes[key]
        return attributes
    owned = attributes if isinstance(attributes, dict) else {}
    owned[key] = value
    return owned


def lts_name_of(name: str, segment_id: int) -> str:
    """LTS object name of one incarnation of a segment (unique: a re-created name gets a new id)."""
    return f"{name}$s{segment_id}"


class StagedNames:
    """The staged name -> segment view: the committed ``by_name`` plus the queued creates and deletes not yet
    applied (an overlay, so the view costs nothing per segment once the log is idle). Each overlay entry counts the
    queued operations on its name; it goes once the last of them is applied (``committed``)."""

    __slots__ = ("_changes", "_committed")

    def __init__(self, committed: dict[str, SegmentMetadata]) -> None:
        self._committed = committed
        self._changes: dict[str, tuple[SegmentMetadata | None, int]] = {}

    def get(self, name: str) -> SegmentMetadata | None:
        change = self._changes.get(name)
        if change is not None:
            return change[0]
        return self._committed.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def _stage(self, name: str, meta: SegmentMetadata | None) -> None:
        change = self._changes.get(name)
        self._changes[name] = (meta, 1 if change is None else change[1] + 1)

    def __setitem__(self, name: str, meta: SegmentMetadata) -> None:
        self._stage(name, meta)

    def __delitem__(self, name: str) -> None:
        if self.get(name) is None:
            raise KeyError(name)
        self._stage(name, None)

    def committed(self, name: str) -> None:
        """A queued create or delete of ``name`` was applied."""
        change = self._changes.get(name)
        if change is None:
            return
        if change[1] <= 1:
            del self._changes[name]
        else:
            self._changes[name] = (change[0], change[1] - 1)

    def clear(self) -> None:
        self._changes.clear()


@dataclass(slots=True)
class ContainerMetadata:
    container_id: int
    next_segment_id: int = 1
    segments: dict[int, SegmentMetadata] = field(default_factory=dict)
    by_name: dict[str, SegmentMetadata] = field(default_factory=dict)
    staged_by_name: StagedNames = field(init=False)
    lts_deletes: list[str] = field(default_factory=list)
    dirty: set[int] = field(default_factory=set)
    """Ids of segments the storage writer may have work for (added when an operation changes a segment; the
    writer drops an id once the segment is all in LTS), so it need not visit every idle segment each cycle."""

    def __post_init__(self) -> None:
        self.staged_by_name = StagedNames(self.by_name)

    def new_segment_id(self) -> int:
        segment_id = self.next_segment_id
        self.next_segment_id += 1
        return segment_id

    def add(self, meta: SegmentMetadata) -> None:
        self.segments[meta.segment_id] = meta
        self.by_name[meta.name] = meta
        self.staged_by_name.committed(meta.name)

    def remove(self, meta: SegmentMetadata) -> None:
        meta.deleted = True
        self.segments.pop(meta.segment_id, None)
        if self.by_name.get(meta.name) is meta:
            del self.by_name[meta.name]
        self.staged_by_name.committed(meta.name)

    def mark_all_dirty(self) -> None:
        """Let the storage writer look at every segment (after recovery)."""
        self.dirty.update(self.segments)

    def reset_staged(self) -> None:
        self.staged_by_name.clear()
        for meta in self.segments.values():
            meta.reset_staged()

    def serialize(self) -> memoryview:
        """The checkpoint: CBOR ``[version, container id, next id, [segment rows...], lts deletes]``, the rows
        encoded one at a time into an indefinite-length array (no list of every segment's row in memory at once),
        returned as a view of the encoder's buffer (no copy of it: at 100,000 streams it is tens of MB)."""
        out = io.BytesIO()
        encoder = cbor2.CBOREncoder(out)
        out.write(b"\x85")
        for value in (_CHECKPOINT_VERSION, self.container_id, self.next_segment_id):
            encoder.encode(value)
        out.write(ARRAY_START)
        for m in self.segments.values():
            encoder.encode([
                m.segment_id, m.name, m.lts_name, m.created_ms, m.scale_type, m.target_rate, m.rollover_size,
                m.is_table, m.length, m.start_offset, m.sealed, m.last_modified_ms,
                [[k.bytes, v] for k, v in m.attributes.items()],
                m.storage_length, m.storage_sealed, m.storage_start_offset,
                [[p.target_offset, p.source_lts_name, p.lts_length, p.length] for p in m.pending_merges],
            ])
        out.write(BREAK)
        encoder.encode(self.lts_deletes)
        return out.getbuffer()

    @classmethod
    def deserialize(cls, data: bytes | memoryview) -> ContainerMetadata:
        """Rebuild the metadata from a checkpoint, decoding one segment row at a time: a list of every row (17 objects
        per segment) would be the largest transient of a restart, and the allocator keeps the memory it grew to."""
        try:
            stream = io.BytesIO(data)
            decoder = cbor2.CBORDecoder(stream)
            if stream.read(1) != b"\x85":
                raise DataCorruptionError("a metadata checkpoint must be a CBOR array of 5 items")
            version, container_id, next_id = decoder.decode(), decoder.decode(), decoder.decode()
            if version != _CHECKPOINT_VERSION:
                raise DataCorruptionError(f"unsupported checkpoint version {version}")
            result = cls(container_id, next_id)
            for row in _rows(stream, decoder):
                result.add(_segment_of(row))
            result.lts_deletes = list(decoder.decode())
        except (ValueError, TypeError, cbor2.CBORDecodeError) as exc:
            raise DataCorruptionError(f"malformed metadata checkpoint: {exc}") from exc
        result.reset_staged()
        return result


def _rows(stream: io.BytesIO, decoder: cbor2.CBORDecoder) -> Iterator[list[Any]]:
    """The segment rows of a checkpoint, one at a time: an indefinite-length array (as ``serialize`` writes it) is
    read item by item up to its break byte; any other array is decoded whole."""
    if stream.read(1) != ARRAY_START:
        stream.seek(-1, io.SEEK_CUR)
        yield from decoder.decode()
        return
    yield from items_until_break(stream, decoder, "metadata checkpoint")


def _segment_of(row: list[Any]) -> SegmentMetadata:
    (seg_id, name, lts_name, created, scale_type, rate, rollover, is_table, length, start, sealed,
     modified, attrs, storage_length, storage_sealed, storage_start, merges) = row
    if lts_name != lts_name_of(name, seg_id):
        raise DataCorruptionError(f"segment {name!r}: unexpected LTS name {lts_name!r} in a checkpoint")
    return SegmentMetadata(
        seg_id, name, created, scale_type, rate, rollover, is_table, length, start, sealed,
        False, modified, {uuid.UUID(bytes=k): v for k, v in attrs} or _NO_ATTRIBUTES, storage_length,
        storage_sealed, storage_start, tuple(PendingMerge(*p) for p in merges),
    )
