"""Operations of a segment container and their compact binary form in Tier-1 log records.

Owns the operation values (frozen dataclasses) and their serialization. A log record is a
sequence of operations, each starting with a one-byte type code; integers are big-endian.
Append data is never copied while encoding: ``encode_into`` adds the caller's buffer to the list
of buffers handed to the log. Decoding returns memoryviews into the record for append data.
Operations name segments by their container-local id (assigned by CreateSegment, never reused);
only CreateSegment carries the name. No I/O and no knowledge of metadata here.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from anabranch.errors import DataCorruptionError
from anabranch.storage.interfaces import Buffer

_CREATE = struct.Struct(">BQBiqBqH")
_APPEND = struct.Struct(">BQQB16sqI")
_SEG_OFFSET = struct.Struct(">BQQ")
_SEG = struct.Struct(">BQ")
_MERGE_HEAD = struct.Struct(">BQH")
_MERGE_SOURCE = struct.Struct(">QQQ")
_ATTR_HEAD = struct.Struct(">BQH")
_ATTR = struct.Struct(">16sq")
_POLICY = struct.Struct(">BQBi")
_CHECKPOINT = struct.Struct(">BI")
_NO_WRITER = bytes(16)


@dataclass(frozen=True, slots=True)
class CreateSegment:
    TYPE = 1
    segment_id: int
    name: str
    scale_type: int
    target_rate: int
    rollover_size: int
    is_table: bool
    created_ms: int


@dataclass(frozen=True, slots=True)
class Append:
    """Data appended at ``offset``; with a writer, the writer's attribute becomes ``event_number``."""

    TYPE = 2
    segment_id: int
    offset: int
    data: Buffer
    writer_id: uuid.UUID | None = None
    event_number: int = 0

    @property
    def length(self) -> int:
        return self.data.nbytes if isinstance(self.data, memoryview) else len(self.data)


@dataclass(frozen=True, slots=True)
class Seal:
    TYPE = 3
    segment_id: int
    length: int


@dataclass(frozen=True, slots=True)
class Truncate:
    TYPE = 4
    segment_id: int
    offset: int


@dataclass(frozen=True, slots=True)
class Delete:
    TYPE = 5
    segment_id: int


@dataclass(frozen=True, slots=True)
class MergeSource:
    segment_id: int
    target_offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Merge:
    """Sources (sealed by this operation) appended to the target in order, then deleted."""

    TYPE = 6
    target_id: int
    sources: tuple[MergeSource, ...]


@dataclass(frozen=True, slots=True)
class UpdateAttributes:
    TYPE = 7
    segment_id: int
    updates: tuple[tuple[uuid.UUID, int], ...]


@dataclass(frozen=True, slots=True)
class UpdatePolicy:
    TYPE = 8
    segment_id: int
    scale_type: int
    target_rate: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A snapshot of the container metadata at this point of the log (serialized by metadata.py)."""

    TYPE = 9
    snapshot: bytes | memoryview


Operation = CreateSegment | Append | Seal | Truncate | Delete | Merge | UpdateAttributes | UpdatePolicy | Checkpoint


def encode_into(op: Operation, out: list[Buffer]) -> None:
    """Add the encoding of ``op`` to ``out`` (append data is added by reference, not copied)."""
    if isinstance(op, Append):
        writer = op.writer_id.bytes if op.writer_id is not None else _NO_WRITER
        out.append(
            _APPEND.pack(Append.TYPE, op.segment_id, op.offset, op.writer_id is not None, writer,
                         op.event_number, op.length)
        )
        out.append(op.data)
    elif isinstance(op, CreateSegment):
        name = op.name.encode()
        out.append(
            _CREATE.pack(CreateSegment.TYPE, op.segment_id, op.scale_type, op.target_rate, op.rollover_size,
                         op.is_table, op.created_ms, len(name))
        )
        out.append(name)
    elif isinstance(op, Seal):
        out.append(_SEG_OFFSET.pack(Seal.TYPE, op.segment_id, op.length))
    elif isinstance(op, Truncate):
        out.append(_SEG_OFFSET.pack(Truncate.TYPE, op.segment_id, op.offset))
    elif isinstance(op, Delete):
        out.append(_SEG.pack(Delete.TYPE, op.segment_id))
    elif isinstance(op, Merge):
        out.append(_MERGE_HEAD.pack(Merge.TYPE, op.target_id, len(op.sources)))
        out.extend(_MERGE_SOURCE.pack(s.segment_id, s.target_offset, s.length) for s in op.sources)
    elif isinstance(op, UpdateAttributes):
        out.append(_ATTR_HEAD.pack(UpdateAttributes.TYPE, op.segment_id, len(op.updates)))
        out.extend(_ATTR.pack(key.bytes, value) for key, value in op.updates)
    elif isinstance(op, UpdatePolicy):
        out.append(_POLICY.pack(UpdatePolicy.TYPE, op.segment_id, op.scale_type, op.target_rate))
    else:
        out.append(_CHECKPOINT.pack(Checkpoint.TYPE, len(op.snapshot)))
        out.append(op.snapshot)


def decode_record(record: bytes) -> Iterator[Operation]:
    """The operations of one log record, in order. Raises DataCorruptionError on malformed input."""
    view = memoryview(record)
    pos = 0
    try:
        while pos < len(view):
            code = view[pos]
            if code == Append.TYPE:
                _, seg, offset, has_writer, writer, event_number, length = _APPEND.unpack_from(view, pos)
                pos += _APPEND.size
                data = view[pos : pos + length]
                if data.nbytes != length:
                    raise DataCorruptionError(f"append data cut short in log record at byte {pos}")
                pos += length
                yield Append(seg, offset, data, uuid.UUID(bytes=writer) if has_writer else None, event_number)
            elif code == CreateSegment.TYPE:
                _, seg, scale_type, rate, rollover, is_table, created, name_len = _CREATE.unpack_from(view, pos)
                pos += _CREATE.size
                name = bytes(view[pos : pos + name_len]).decode()
                pos += name_len
                yield CreateSegment(seg, name, scale_type, rate, rollover, bool(is_table), created)
            elif code == Seal.TYPE:
                _, seg, length = _SEG_OFFSET.unpack_from(view, pos)
                pos += _SEG_OFFSET.size
                yield Seal(seg, length)
            elif code == Truncate.TYPE:
                _, seg, offset = _SEG_OFFSET.unpack_from(view, pos)
                pos += _SEG_OFFSET.size
                yield Truncate(seg, offset)
            elif code == Delete.TYPE:
                _, seg = _SEG.unpack_from(view, pos)
                pos += _SEG.size
                yield Delete(seg)
            elif code == Merge.TYPE:
                _, target, count = _MERGE_HEAD.unpack_from(view, pos)
                pos += _MERGE_HEAD.size
                sources = []
                for _ in range(count):
                    sources.append(MergeSource(*_MERGE_SOURCE.unpack_from(view, pos)))
                    pos += _MERGE_SOURCE.size
                yield Merge(target, tuple(sources))
            elif code == UpdateAttributes.TYPE:
                _, seg, count = _ATTR_HEAD.unpack_from(view, pos)
                pos += _ATTR_HEAD.size
                updates = []
                for _ in range(count):
                    key, value = _ATTR.unpack_from(view, pos)
                    pos += _ATTR.size
                    updates.append((uuid.UUID(bytes=key), value))
                yield UpdateAttributes(seg, tuple(updates))
            elif code == UpdatePolicy.TYPE:
                _, seg, scale_type, rate = _POLICY.unpack_from(view, pos)
                pos += _POLICY.size
                yield UpdatePolicy(seg, scale_type, rate)
            elif code == Checkpoint.TYPE:
                _, length = _CHECKPOINT.unpack_from(view, pos)
                pos += _CHECKPOINT.size
                yield Checkpoint(bytes(view[pos : pos + length]))
                pos += length
            else:
                raise DataCorruptionError(f"unknown operation type {code} in log record at byte {pos}")
    except struct.error as exc:
        raise DataCorruptionError(f"log record cut short at byte {pos}: {exc}") from exc
