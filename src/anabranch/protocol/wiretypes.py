"""Wire types: the vocabulary in which :mod:`anabranch.protocol.commands` declares its layouts.

Each constant names one encoding from the spec (big-endian integers, Java ``writeUTF`` strings,
16-byte UUIDs, i32-length byte buffers, and the compound types of table segments). The codec
turns a command's ``LAYOUT`` into reads and writes; this module only names the types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class WireType(Enum):
    I8 = "i8"
    I32 = "i32"
    I64 = "i64"
    BOOL = "bool"
    UTF = "utf"
    """u16 length + (modified) UTF-8."""
    UUID = "uuid"
    """Two big-endian i64: most significant, least significant."""
    BYTES = "bytes"
    """i32 length + raw bytes."""
    REST = "rest"
    """All the bytes left in the frame."""
    EVENT = "event"
    """An embedded Event: i32 type (must be 0), i32 length, payload; the value is the payload."""
    I64_LIST = "i64list"
    """i32 count + count x i64."""
    UTF_LIST = "utflist"
    """i32 count + count x utf."""
    TABLE_ENTRIES = "table_entries"
    """i32 count + count x (TableKey, TableValue)."""
    TABLE_KEYS = "table_keys"
    """i32 count + count x TableKey."""
    ITERATOR_ARGS = "iterator_args"
    """Four bytes32 buffers, each read only if at least 4 bytes remain."""
    ATTRIBUTE_UPDATES = "attribute_updates"
    """i32 count + count x ConditionalAttributeUpdate (33 bytes each)."""
    BATCH_MERGE_RESULTS = "batch_merge_results"
    """i32 count + count x (source utf, new target offset i64), interleaved."""
    CHUNK_INFOS = "chunk_infos"
    """i32 count + count x ChunkInfo."""


@dataclass(frozen=True, slots=True)
class Opt:
    """An optional trailing field: always written, read only if the frame has bytes left."""

    type: WireType
    default: object


I8 = WireType.I8
I32 = WireType.I32
I64 = WireType.I64
BOOL = WireType.BOOL
UTF = WireType.UTF
UUID = WireType.UUID
BYTES = WireType.BYTES
REST = WireType.REST
EVENT = WireType.EVENT
I64List = WireType.I64_LIST
UtfList = WireType.UTF_LIST
TableEntriesT = WireType.TABLE_ENTRIES
TableKeysT = WireType.TABLE_KEYS
IteratorArgs = WireType.ITERATOR_ARGS
AttributeUpdates = WireType.ATTRIBUTE_UPDATES
BatchMergeResults = WireType.BATCH_MERGE_RESULTS
ChunkInfos = WireType.CHUNK_INFOS
