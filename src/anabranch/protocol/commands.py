"""Every Pravega wire command as a frozen value, with its type code and its wire layout.

This module is the contract between the codec, the segment store, the client and the tests.
Each command class declares ``TYPE`` (the i32 type code of the frame) and ``LAYOUT``: the fields
in wire order, each with its wire type (see :mod:`anabranch.protocol.wiretypes`). Fields marked
optional (``Opt``) are always written, and read only when the frame still has bytes left, as the
Java decoder does. Nothing here does I/O or knows about sockets.

Field names are the spec's camelCase names in snake_case; ``requestId`` is ``request_id`` everywhere.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import ClassVar

from anabranch.protocol.wiretypes import (
    BOOL,
    BYTES,
    EVENT,
    I8,
    I32,
    I64,
    REST,
    UTF,
    UUID,
    AttributeUpdates,
    BatchMergeResults,
    ChunkInfos,
    I64List,
    IteratorArgs,
    Opt,
    TableEntriesT,
    TableKeysT,
    UtfList,
    WireType,
)

NULL_ATTRIBUTE_VALUE = -(2**63)
"""Long.MIN_VALUE: 'no value' for attributes and for a writer that never wrote."""
NO_VERSION = -(2**63)
"""Table key version meaning 'unconditional'."""
NOT_EXISTS = -1
"""Table key version meaning 'the key must not exist'."""
NULL_TABLE_SEGMENT_OFFSET = -1

WIRE_VERSION = 17
OLDEST_COMPATIBLE_VERSION = 5


@dataclass(frozen=True, slots=True)
class TableKey:
    key: bytes
    version: int = NO_VERSION


@dataclass(frozen=True, slots=True)
class TableEntry:
    key: TableKey
    value: bytes


@dataclass(frozen=True, slots=True)
class ConditionalAttributeUpdate:
    """One attribute update carried by MergeSegments (33 bytes on the wire)."""

    REPLACE: ClassVar[int] = 1
    REPLACE_IF_EQUALS: ClassVar[int] = 4

    attribute_id: uuid.UUID
    update_type: int
    new_value: int
    old_value: int


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    length_in_metadata: int
    length_in_storage: int
    start_offset: int
    chunk_name: str
    exists_in_storage: bool


@dataclass(frozen=True, slots=True)
class TableIteratorArgs:
    continuation_token: bytes = b""
    prefix_filter: bytes = b""
    from_key: bytes = b""
    to_key: bytes = b""


class WireCommand:
    """Base of every command. ``TYPE`` is the frame type code; ``LAYOUT`` the fields in wire order."""

    __slots__ = ()
    TYPE: ClassVar[int]
    LAYOUT: ClassVar[tuple[tuple[str, WireType | Opt], ...]]
    IS_REQUEST: ClassVar[bool] = False
    IS_REPLY: ClassVar[bool] = False


class Request(WireCommand):
    """A command a client sends to the segment store."""

    __slots__ = ()
    IS_REQUEST = True


class Reply(WireCommand):
    """A command the segment store sends to a client."""

    __slots__ = ()
    IS_REPLY = True


# --- control -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello(Request, Reply):
    TYPE = -127
    LAYOUT = (("high_version", I32), ("low_version", I32))
    high_version: int
    low_version: int


@dataclass(frozen=True, slots=True)
class Padding(WireCommand):
    """Only inside an AppendBlock: N zero bytes."""

    TYPE = -1
    LAYOUT = (("data", REST),)
    data: bytes


@dataclass(frozen=True, slots=True)
class PartialEvent(WireCommand):
    """Only inside an AppendBlock: the first bytes of an event whose rest is in AppendBlockEnd."""

    TYPE = -2
    LAYOUT = (("data", REST),)
    data: bytes


@dataclass(frozen=True, slots=True)
class FlushToStorage(WireCommand):
    """Admin port only; the data port closes a connection that sends it."""

    TYPE = -3
    LAYOUT = (("container_id", I32), ("delegation_token", UTF), ("request_id", I64))
    container_id: int
    delegation_token: str
    request_id: int


@dataclass(frozen=True, slots=True)
class StorageFlushed(WireCommand):
    TYPE = -4
    LAYOUT = (("request_id", I64),)
    request_id: int


@dataclass(frozen=True, slots=True)
class ListStorageChunks(WireCommand):
    TYPE = -5
    LAYOUT = (("segment", UTF), ("delegation_token", UTF), ("request_id", I64))
    segment: str
    delegation_token: str
    request_id: int


@dataclass(frozen=True, slots=True)
class StorageChunksListed(WireCommand):
    TYPE = -6
    LAYOUT = (("request_id", I64), ("chunks", ChunkInfos))
    request_id: int
    chunks: tuple[ChunkInfo, ...]


@dataclass(frozen=True, slots=True)
class KeepAlive(Request, Reply):
    TYPE = 100
    LAYOUT = ()


# --- appends -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetupAppend(Request):
    TYPE = 1
    LAYOUT = (("request_id", I64), ("writer_id", UUID), ("segment", UTF), ("delegation_token", UTF))
    request_id: int
    writer_id: uuid.UUID
    segment: str
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class AppendSetup(Reply):
    TYPE = 2
    LAYOUT = (("request_id", I64), ("segment", UTF), ("writer_id", UUID), ("last_event_number", I64))
    request_id: int
    segment: str
    writer_id: uuid.UUID
    last_event_number: int


@dataclass(frozen=True, slots=True)
class AppendBlock(Request):
    """Java-style block start: the writer id, then block bytes to the end of the frame."""

    TYPE = 3
    LAYOUT = (("writer_id", UUID), ("data", REST))
    writer_id: uuid.UUID
    data: bytes


@dataclass(frozen=True, slots=True)
class AppendBlockEnd(Request):
    TYPE = 4
    LAYOUT = (
        ("writer_id", UUID),
        ("size_of_whole_events", I32),
        ("data", BYTES),
        ("num_events", I32),
        ("last_event_number", I64),
        ("request_id", Opt(I64, -1)),
    )
    writer_id: uuid.UUID
    size_of_whole_events: int
    data: bytes
    num_events: int
    last_event_number: int
    request_id: int = -1


@dataclass(frozen=True, slots=True)
class ConditionalAppend(Request):
    """One event (type 0) stored with its 8-byte header iff the segment length equals expected_offset.

    On the wire the event is ``eventType i32 (0), eventLen i32, eventData``; ``data`` holds eventData.
    """

    TYPE = 5
    LAYOUT = (
        ("writer_id", UUID),
        ("event_number", I64),
        ("expected_offset", I64),
        ("data", EVENT),
        ("request_id", Opt(I64, -1)),
    )
    writer_id: uuid.UUID
    event_number: int
    expected_offset: int
    data: bytes
    request_id: int = -1


@dataclass(frozen=True, slots=True)
class ConditionalBlockEnd(Request):
    TYPE = 89
    LAYOUT = (
        ("writer_id", UUID),
        ("event_number", I64),
        ("expected_offset", I64),
        ("data", BYTES),
        ("request_id", I64),
    )
    writer_id: uuid.UUID
    event_number: int
    expected_offset: int
    data: bytes
    request_id: int


@dataclass(frozen=True, slots=True)
class DataAppended(Reply):
    TYPE = 7
    LAYOUT = (
        ("writer_id", UUID),
        ("event_number", I64),
        ("previous_event_number", Opt(I64, NULL_ATTRIBUTE_VALUE)),
        ("request_id", Opt(I64, -1)),
        ("current_segment_write_offset", Opt(I64, -1)),
    )
    writer_id: uuid.UUID
    event_number: int
    previous_event_number: int
    request_id: int
    current_segment_write_offset: int


@dataclass(frozen=True, slots=True)
class ConditionalCheckFailed(Reply):
    TYPE = 8
    LAYOUT = (("writer_id", UUID), ("event_number", I64), ("request_id", Opt(I64, -1)))
    writer_id: uuid.UUID
    event_number: int
    request_id: int


@dataclass(frozen=True, slots=True)
class InvalidEventNumber(Reply):
    TYPE = 55
    LAYOUT = (
        ("writer_id", UUID),
        ("request_id", I64),
        ("server_stack_trace", Opt(UTF, "")),
        ("event_number", Opt(I64, -1)),
    )
    writer_id: uuid.UUID
    request_id: int
    server_stack_trace: str
    event_number: int


@dataclass(frozen=True, slots=True)
class CreateTransientSegment(Request):
    TYPE = 40
    LAYOUT = (("request_id", I64), ("writer_id", UUID), ("parent_segment", UTF), ("delegation_token", UTF))
    request_id: int
    writer_id: uuid.UUID
    parent_segment: str
    delegation_token: str = ""


# --- reads, info, attributes ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadSegment(Request):
    TYPE = 9
    LAYOUT = (
        ("segment", UTF),
        ("offset", I64),
        ("suggested_length", I32),
        ("delegation_token", UTF),
        ("request_id", Opt(I64, -1)),
    )
    segment: str
    offset: int
    suggested_length: int
    delegation_token: str = ""
    request_id: int = -1


@dataclass(frozen=True, slots=True)
class SegmentRead(Reply):
    TYPE = 10
    LAYOUT = (
        ("segment", UTF),
        ("offset", I64),
        ("at_tail", BOOL),
        ("end_of_segment", BOOL),
        ("data", BYTES),
        ("request_id", Opt(I64, -1)),
    )
    segment: str
    offset: int
    at_tail: bool
    end_of_segment: bool
    data: bytes
    request_id: int


@dataclass(frozen=True, slots=True)
class GetStreamSegmentInfo(Request):
    TYPE = 11
    LAYOUT = (("request_id", I64), ("segment_name", UTF), ("delegation_token", UTF))
    request_id: int
    segment_name: str
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class StreamSegmentInfo(Reply):
    TYPE = 12
    LAYOUT = (
        ("request_id", I64),
        ("segment_name", UTF),
        ("exists", BOOL),
        ("is_sealed", BOOL),
        ("is_deleted", BOOL),
        ("last_modified", I64),
        ("write_offset", I64),
        ("start_offset", Opt(I64, 0)),
    )
    request_id: int
    segment_name: str
    exists: bool
    is_sealed: bool
    is_deleted: bool
    last_modified: int
    write_offset: int
    start_offset: int


@dataclass(frozen=True, slots=True)
class GetSegmentAttribute(Request):
    TYPE = 34
    LAYOUT = (("request_id", I64), ("segment_name", UTF), ("attribute_id", UUID), ("delegation_token", UTF))
    request_id: int
    segment_name: str
    attribute_id: uuid.UUID
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class SegmentAttribute(Reply):
    TYPE = 35
    LAYOUT = (("request_id", I64), ("value", I64))
    request_id: int
    value: int


@dataclass(frozen=True, slots=True)
class UpdateSegmentAttribute(Request):
    TYPE = 36
    LAYOUT = (
        ("request_id", I64),
        ("segment_name", UTF),
        ("attribute_id", UUID),
        ("new_value", I64),
        ("expected_value", I64),
        ("delegation_token", UTF),
    )
    request_id: int
    segment_name: str
    attribute_id: uuid.UUID
    new_value: int
    expected_value: int
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class SegmentAttributeUpdated(Reply):
    TYPE = 37
    LAYOUT = (("request_id", I64), ("success", BOOL))
    request_id: int
    success: bool


@dataclass(frozen=True, slots=True)
class LocateOffset(Request):
    TYPE = 41
    LAYOUT = (("request_id", I64), ("segment", UTF), ("target_offset", I64), ("delegation_token", UTF))
    request_id: int
    segment: str
    target_offset: int
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class OffsetLocated(Reply):
    TYPE = 42
    LAYOUT = (("request_id", I64), ("segment", UTF), ("offset", I64))
    request_id: int
    segment: str
    offset: int


# --- segment administration ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateSegment(Request):
    NO_SCALE: ClassVar[int] = 0
    IN_KBYTES_PER_SEC: ClassVar[int] = 1
    IN_EVENTS_PER_SEC: ClassVar[int] = 2

    TYPE = 20
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("target_rate", I32),
        ("scale_type", I8),
        ("delegation_token", UTF),
        ("rollover_size_bytes", Opt(I64, 0)),
    )
    request_id: int
    segment: str
    target_rate: int = 0
    scale_type: int = 0
    delegation_token: str = ""
    rollover_size_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SegmentCreated(Reply):
    TYPE = 21
    LAYOUT = (("request_id", I64), ("segment", UTF))
    request_id: int
    segment: str


@dataclass(frozen=True, slots=True)
class SealSegment(Request):
    TYPE = 28
    LAYOUT = (("request_id", I64), ("segment", UTF), ("delegation_token", UTF))
    request_id: int
    segment: str
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class SegmentSealed(Reply):
    TYPE = 29
    LAYOUT = (("request_id", I64), ("segment", UTF))
    request_id: int
    segment: str


@dataclass(frozen=True, slots=True)
class DeleteSegment(Request):
    TYPE = 30
    LAYOUT = (("request_id", I64), ("segment", UTF), ("delegation_token", UTF))
    request_id: int
    segment: str
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class SegmentDeleted(Reply):
    TYPE = 31
    LAYOUT = (("request_id", I64), ("segment", UTF))
    request_id: int
    segment: str


@dataclass(frozen=True, slots=True)
class UpdateSegmentPolicy(Request):
    TYPE = 32
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("target_rate", I32),
        ("scale_type", I8),
        ("delegation_token", UTF),
    )
    request_id: int
    segment: str
    target_rate: int
    scale_type: int
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class SegmentPolicyUpdated(Reply):
    TYPE = 33
    LAYOUT = (("request_id", I64), ("segment", UTF))
    request_id: int
    segment: str


@dataclass(frozen=True, slots=True)
class TruncateSegment(Request):
    TYPE = 38
    LAYOUT = (("request_id", I64), ("segment", UTF), ("truncation_offset", I64), ("delegation_token", UTF))
    request_id: int
    segment: str
    truncation_offset: int
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class SegmentTruncated(Reply):
    TYPE = 39
    LAYOUT = (("request_id", I64), ("segment", UTF))
    request_id: int
    segment: str


@dataclass(frozen=True, slots=True)
class MergeSegments(Request):
    TYPE = 58
    LAYOUT = (
        ("request_id", I64),
        ("target", UTF),
        ("source", UTF),
        ("delegation_token", UTF),
        ("attribute_updates", Opt(AttributeUpdates, ())),
    )
    request_id: int
    target: str
    source: str
    delegation_token: str = ""
    attribute_updates: tuple[ConditionalAttributeUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class SegmentsMerged(Reply):
    TYPE = 59
    LAYOUT = (
        ("request_id", I64),
        ("target", UTF),
        ("source", UTF),
        ("new_target_write_offset", Opt(I64, -1)),
    )
    request_id: int
    target: str
    source: str
    new_target_write_offset: int


@dataclass(frozen=True, slots=True)
class MergeSegmentsBatch(Request):
    TYPE = 90
    LAYOUT = (("request_id", I64), ("target", UTF), ("sources", UtfList), ("delegation_token", UTF))
    request_id: int
    target: str
    sources: tuple[str, ...]
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class SegmentsBatchMerged(Reply):
    """Sources and offsets travel as interleaved (source utf, offset i64) pairs."""

    TYPE = 91
    LAYOUT = (("request_id", I64), ("target", UTF), ("results", BatchMergeResults))
    request_id: int
    target: str
    results: tuple[tuple[str, int], ...]


# --- errors --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrongHost(Reply):
    TYPE = 50
    LAYOUT = (("request_id", I64), ("segment", UTF), ("correct_host", UTF), ("server_stack_trace", Opt(UTF, "")))
    request_id: int
    segment: str
    correct_host: str = ""
    server_stack_trace: str = ""


@dataclass(frozen=True, slots=True)
class SegmentIsSealed(Reply):
    TYPE = 51
    LAYOUT = (("request_id", I64), ("segment", UTF), ("server_stack_trace", Opt(UTF, "")), ("offset", Opt(I64, -1)))
    request_id: int
    segment: str
    server_stack_trace: str = ""
    offset: int = -1


@dataclass(frozen=True, slots=True)
class SegmentAlreadyExists(Reply):
    TYPE = 52
    LAYOUT = (("request_id", I64), ("segment", UTF), ("server_stack_trace", Opt(UTF, "")))
    request_id: int
    segment: str
    server_stack_trace: str = ""


@dataclass(frozen=True, slots=True)
class NoSuchSegment(Reply):
    TYPE = 53
    LAYOUT = (("request_id", I64), ("segment", UTF), ("server_stack_trace", Opt(UTF, "")), ("offset", Opt(I64, -1)))
    request_id: int
    segment: str
    server_stack_trace: str = ""
    offset: int = -1


@dataclass(frozen=True, slots=True)
class SegmentIsTruncated(Reply):
    TYPE = 56
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("start_offset", I64),
        ("server_stack_trace", Opt(UTF, "")),
        ("offset", Opt(I64, -1)),
    )
    request_id: int
    segment: str
    start_offset: int
    server_stack_trace: str = ""
    offset: int = -1


@dataclass(frozen=True, slots=True)
class OperationUnsupported(Reply):
    TYPE = 57
    LAYOUT = (("request_id", I64), ("operation_name", UTF), ("server_stack_trace", Opt(UTF, "")))
    request_id: int
    operation_name: str
    server_stack_trace: str = ""


@dataclass(frozen=True, slots=True)
class AuthTokenCheckFailed(Reply):
    TYPE = 60
    LAYOUT = (("request_id", I64), ("server_stack_trace", Opt(UTF, "")), ("error_code", Opt(I32, -1)))
    request_id: int
    server_stack_trace: str = ""
    error_code: int = -1


@dataclass(frozen=True, slots=True)
class ErrorMessage(Reply):
    ILLEGAL_ARGUMENT: ClassVar[int] = 0
    UNSPECIFIED: ClassVar[int] = -1

    TYPE = 61
    LAYOUT = (("request_id", I64), ("segment", UTF), ("message", UTF), ("error_code", I32))
    request_id: int
    segment: str
    message: str
    error_code: int = -1


@dataclass(frozen=True, slots=True)
class TableSegmentNotEmpty(Reply):
    TYPE = 80
    LAYOUT = (("request_id", I64), ("segment", UTF), ("server_stack_trace", UTF))
    request_id: int
    segment: str
    server_stack_trace: str = ""


@dataclass(frozen=True, slots=True)
class TableKeyDoesNotExist(Reply):
    TYPE = 81
    LAYOUT = (("request_id", I64), ("segment", UTF), ("server_stack_trace", UTF))
    request_id: int
    segment: str
    server_stack_trace: str = ""


@dataclass(frozen=True, slots=True)
class TableKeyBadVersion(Reply):
    TYPE = 82
    LAYOUT = (("request_id", I64), ("segment", UTF), ("server_stack_trace", UTF))
    request_id: int
    segment: str
    server_stack_trace: str = ""


# --- table segments ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetTableSegmentInfo(Request):
    TYPE = 68
    LAYOUT = (("request_id", I64), ("segment_name", UTF), ("delegation_token", UTF))
    request_id: int
    segment_name: str
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class TableSegmentInfo(Reply):
    TYPE = 69
    LAYOUT = (
        ("request_id", I64),
        ("segment_name", UTF),
        ("start_offset", I64),
        ("length", I64),
        ("entry_count", I64),
        ("key_length", I32),
    )
    request_id: int
    segment_name: str
    start_offset: int
    length: int
    entry_count: int
    key_length: int = 0


@dataclass(frozen=True, slots=True)
class CreateTableSegment(Request):
    TYPE = 70
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("delegation_token", UTF),
        ("sorted_deprecated", Opt(BOOL, False)),
        ("key_length", Opt(I32, 0)),
        ("rollover_size_bytes", Opt(I64, 0)),
    )
    request_id: int
    segment: str
    delegation_token: str = ""
    sorted_deprecated: bool = False
    key_length: int = 0
    rollover_size_bytes: int = 0


@dataclass(frozen=True, slots=True)
class DeleteTableSegment(Request):
    TYPE = 71
    LAYOUT = (("request_id", I64), ("segment", UTF), ("must_be_empty", BOOL), ("delegation_token", UTF))
    request_id: int
    segment: str
    must_be_empty: bool = False
    delegation_token: str = ""


@dataclass(frozen=True, slots=True)
class UpdateTableEntries(Request):
    TYPE = 74
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("delegation_token", UTF),
        ("entries", TableEntriesT),
        ("table_segment_offset", Opt(I64, NULL_TABLE_SEGMENT_OFFSET)),
    )
    request_id: int
    segment: str
    delegation_token: str
    entries: tuple[TableEntry, ...]
    table_segment_offset: int = NULL_TABLE_SEGMENT_OFFSET


@dataclass(frozen=True, slots=True)
class TableEntriesUpdated(Reply):
    TYPE = 75
    LAYOUT = (("request_id", I64), ("updated_versions", I64List))
    request_id: int
    updated_versions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RemoveTableKeys(Request):
    TYPE = 76
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("delegation_token", UTF),
        ("keys", TableKeysT),
        ("table_segment_offset", Opt(I64, NULL_TABLE_SEGMENT_OFFSET)),
    )
    request_id: int
    segment: str
    delegation_token: str
    keys: tuple[TableKey, ...]
    table_segment_offset: int = NULL_TABLE_SEGMENT_OFFSET


@dataclass(frozen=True, slots=True)
class TableKeysRemoved(Reply):
    TYPE = 77
    LAYOUT = (("request_id", I64), ("segment", UTF))
    request_id: int
    segment: str


@dataclass(frozen=True, slots=True)
class ReadTable(Request):
    TYPE = 78
    LAYOUT = (("request_id", I64), ("segment", UTF), ("delegation_token", UTF), ("keys", TableKeysT))
    request_id: int
    segment: str
    delegation_token: str
    keys: tuple[TableKey, ...]


@dataclass(frozen=True, slots=True)
class TableRead(Reply):
    TYPE = 79
    LAYOUT = (("request_id", I64), ("segment", UTF), ("entries", TableEntriesT))
    request_id: int
    segment: str
    entries: tuple[TableEntry, ...]


@dataclass(frozen=True, slots=True)
class ReadTableKeys(Request):
    TYPE = 83
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("delegation_token", UTF),
        ("suggested_key_count", I32),
        ("args", IteratorArgs),
    )
    request_id: int
    segment: str
    delegation_token: str
    suggested_key_count: int
    args: TableIteratorArgs = field(default_factory=TableIteratorArgs)


@dataclass(frozen=True, slots=True)
class TableKeysRead(Reply):
    TYPE = 84
    LAYOUT = (("request_id", I64), ("segment", UTF), ("keys", TableKeysT), ("continuation_token", BYTES))
    request_id: int
    segment: str
    keys: tuple[TableKey, ...]
    continuation_token: bytes


@dataclass(frozen=True, slots=True)
class ReadTableEntries(Request):
    TYPE = 85
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("delegation_token", UTF),
        ("suggested_entry_count", I32),
        ("args", IteratorArgs),
    )
    request_id: int
    segment: str
    delegation_token: str
    suggested_entry_count: int
    args: TableIteratorArgs = field(default_factory=TableIteratorArgs)


@dataclass(frozen=True, slots=True)
class TableEntriesRead(Reply):
    TYPE = 86
    LAYOUT = (("request_id", I64), ("segment", UTF), ("entries", TableEntriesT), ("continuation_token", BYTES))
    request_id: int
    segment: str
    entries: tuple[TableEntry, ...]
    continuation_token: bytes


@dataclass(frozen=True, slots=True)
class ReadTableEntriesDelta(Request):
    TYPE = 88
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("delegation_token", UTF),
        ("from_position", I64),
        ("suggested_entry_count", I32),
    )
    request_id: int
    segment: str
    delegation_token: str
    from_position: int
    suggested_entry_count: int


@dataclass(frozen=True, slots=True)
class TableEntriesDeltaRead(Reply):
    TYPE = 87
    LAYOUT = (
        ("request_id", I64),
        ("segment", UTF),
        ("entries", TableEntriesT),
        ("should_clear", BOOL),
        ("reached_end", BOOL),
        ("last_position", I64),
    )
    request_id: int
    segment: str
    entries: tuple[TableEntry, ...]
    should_clear: bool
    reached_end: bool
    last_position: int
