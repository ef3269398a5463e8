"""The on-segment format of a table segment: batches of put/remove records.

A batch is one atomic append: a 12-byte header ``magic u32, body length u32, crc32(body) u32`` followed by
the body, a sequence of records ``kind u8 (1 put, 2 remove), key length u32, value length u32, key, value``.
The version of an entry is the segment offset of its record, so versions strictly increase through the
segment. A batch that fails its checksum or structure means corruption (appends are atomic, so a
well-formed segment never holds a torn batch).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

from anabranch.errors import DataCorruptionError

MAGIC = 0x41544231  # "ATB1"
BATCH_HEADER = struct.Struct(">III")
RECORD_HEADER = struct.Struct(">BII")


class RecordKind(IntEnum):
    PUT = 1
    REMOVE = 2


@dataclass(frozen=True, slots=True)
class Record:
    """One put or remove; ``offset`` is its position in the segment (the entry's version)."""

    kind: RecordKind
    key: bytes
    value: bytes
    offset: int


def encode_batch(records: Sequence[tuple[RecordKind, bytes, bytes]], batch_offset: int) -> tuple[bytes, list[int]]:
    """Serialize records for an append at ``batch_offset``; returns the bytes and each record's offset."""
    parts: list[bytes] = []
    offsets: list[int] = []
    position = batch_offset + BATCH_HEADER.size
    for kind, key, value in records:
        offsets.append(position)
        parts.append(RECORD_HEADER.pack(kind, len(key), len(value)))
        parts.append(key)
        parts.append(value)
        position += RECORD_HEADER.size + len(key) + len(value)
    body = b"".join(parts)
    return BATCH_HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body, offsets


def batch_size(buffer: bytes | bytearray | memoryview, start: int) -> int | None:
    """Total size of the batch starting at ``start`` in ``buffer``, or None if its header is incomplete."""
    if len(buffer) - start < BATCH_HEADER.size:
        return None
    magic, length, _ = BATCH_HEADER.unpack_from(buffer, start)
    if magic != MAGIC:
        raise DataCorruptionError(f"table segment holds no batch header at position {start} (magic {magic:#x})")
    return BATCH_HEADER.size + int(length)


def decode_batch(buffer: bytes | bytearray | memoryview, start: int, segment_offset: int) -> Iterator[Record]:
    """Records of the complete batch at ``buffer[start:]``, which lies at ``segment_offset`` in the segment."""
    magic, length, crc = BATCH_HEADER.unpack_from(buffer, start)
    body_start = start + BATCH_HEADER.size
    body = bytes(buffer[body_start : body_start + length])
    if magic != MAGIC or len(body) != length or zlib.crc32(body) != crc:
        raise DataCorruptionError(f"table segment batch at offset {segment_offset} fails its checksum")
    position = 0
    while position < length:
        if length - position < RECORD_HEADER.size:
            raise DataCorruptionError(f"table segment batch at offset {segment_offset} has a truncated record")
        kind, key_len, value_len = RECORD_HEADER.unpack_from(body, position)
        key_start = position + RECORD_HEADER.size
        end = key_start + key_len + value_len
        if end > length or kind not in (RecordKind.PUT, RecordKind.REMOVE):
            raise DataCorruptionError(f"table segment batch at offset {segment_offset} has a malformed record")
        yield Record(
            RecordKind(kind),
            body[key_start : key_start + key_len],
            body[key_start + key_len : end],
            segment_offset + BATCH_HEADER.size + position,
        )
        position = end
