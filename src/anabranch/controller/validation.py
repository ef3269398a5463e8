"""Checks of every Controller gRPC request where it enters, before any workflow runs or anything is allocated.

protobuf guarantees field types; it does not guarantee that an enum holds a known value (proto3 enums are open),
that a count is sane, or that a string is short. :func:`check_request` walks the whole message (every field of
every nested message, map and list) and then applies the rules of its rpc; a refusal raises
``InvalidArgumentError``, which the rpc wrapper answers as INVALID_ARGUMENT with the message. Name *syntax* is
left to the workflows, which answer Pravega's status enums (``INVALID_STREAM_NAME``...); only lengths are checked
here.

The documented limits (docs/controller.md, "Limits"):

- ``MAX_SEGMENTS_PER_EPOCH`` active segments in one epoch of a stream (``minNumSegments``, the new ranges of a
  scale, an auto-scale split): each epoch record must fit one metadata table value;
- ``MAX_SCALE_FACTOR`` for ``scaleFactor`` (the number of parts an auto-scale split makes);
- ``MAX_KVT_PARTITIONS`` partitions (table segments) per key-value table, keys of at most
  ``MAX_KVT_KEY_LENGTH`` bytes (primary + secondary, the segment store's table key limit);
- ``MAX_METADATA_VALUE`` bytes for a configuration the controller stores as one table value (reader groups,
  key-value tables): the segment store's table value limit;
- names of at most ``MAX_NAME_LENGTH`` characters, other strings of at most ``MAX_STRING_LENGTH``, lists and
  maps (stream cuts) of at most ``MAX_ENTRIES`` entries.

Values that are only stored and echoed back to the client that sent them (reader-group timing fields, writer
ids) are bounded in size but not interpreted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from anabranch.controller.errors import InvalidArgumentError
from anabranch.model.names import MAX_STREAM_NAME
from anabranch.protocol import controller_pb2 as pb

MAX_SEGMENTS_PER_EPOCH = 1000
MAX_SCALE_FACTOR = 100
MAX_KVT_PARTITIONS = 1000
MAX_KVT_KEY_LENGTH = 8192
MAX_METADATA_VALUE = 1024 * 1024 - 8192
MAX_NAME_LENGTH = MAX_STREAM_NAME
MAX_STRING_LENGTH = 4096
MAX_ENTRIES = 10_000
MAX_TOKEN_LENGTH = 2 * (MAX_KVT_KEY_LENGTH + 64)
"""Hex characters of a list continuation token (it names a table key)."""
MAX_LEASE_MS = 24 * 3600 * 1000
INT32_MAX = 2**31 - 1

NAME_FIELDS = frozenset({"scope", "stream", "kvtName", "readerGroup", "readerGroupName", "subscriber"})
"""String fields that hold a scope, stream, table or group name."""
CREATE_RPCS = frozenset({"createScope", "createStream", "createKeyValueTable", "createReaderGroup"})
"""Rpcs whose workflow answers a bad name with a status enum (Pravega's behaviour), not INVALID_ARGUMENT."""


def _refuse(where: str, problem: str) -> InvalidArgumentError:
    shown = where if len(where) <= 200 else where[:200] + "..."
    return InvalidArgumentError(f"{shown}: {problem}")


def _check_string(where: str, name: str, value: str, creating: bool) -> None:
    if name in NAME_FIELDS and not creating and len(value) > MAX_NAME_LENGTH:
        raise _refuse(where, f"a name of {len(value)} characters; names have at most {MAX_NAME_LENGTH}")
    if len(value) > MAX_STRING_LENGTH:
        raise _refuse(where, f"a string of {len(value)} characters; at most {MAX_STRING_LENGTH} are accepted")


def _check_enum(where: str, field: FieldDescriptor, value: int) -> None:
    if value not in field.enum_type.values_by_number:
        known = ", ".join(f"{v.number} ({v.name})" for v in field.enum_type.values)
        raise _refuse(where, f"unknown {field.enum_type.name} value {value}; known: {known}")


def _check_cut(where: str, cut: Mapping[int, int], *, future_entries: bool = True) -> None:
    """A stream cut: segment id → offset. Segment ids are never negative; a negative offset marks a "future"
    segment (spec §3.5), which a truncation cut cannot have."""
    for seg_id, offset in cut.items():
        if seg_id < 0:
            raise _refuse(where, f"segment id {seg_id} is negative")
        if offset < 0 and not future_entries:
            raise _refuse(where, f"offset {offset} of segment {seg_id} is negative (a truncation cut's offsets "
                                 "are >= 0)")


def _walk(message: Message, path: str, creating: bool) -> None:
    for field, value in message.ListFields():
        where = f"{path}.{field.name}"
        is_map = field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
        repeated = field.is_repeated
        if repeated and len(value) > MAX_ENTRIES:
            raise _refuse(where, f"{len(value)} entries; at most {MAX_ENTRIES} are accepted")
        if is_map:
            value_field = field.message_type.fields_by_name["value"]
            key_field = field.message_type.fields_by_name["key"]
            if key_field.type == value_field.type == FieldDescriptor.TYPE_INT64:
                _check_cut(where, value)  # every map<int64, int64> of the API is a stream cut
                continue
            for key, item in value.items():
                if key_field.type == FieldDescriptor.TYPE_STRING:
                    _check_string(f"{where}[key]", "", key, creating)
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    _walk(item, f"{where}[{str(key)[:40]}]", creating)
            continue
        items = list(value) if repeated else [value]
        for item in items:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                _walk(item, where, creating)
            elif field.type == FieldDescriptor.TYPE_ENUM:
                _check_enum(where, field, item)
            elif field.type == FieldDescriptor.TYPE_STRING:
                _check_string(where, field.name, item, creating)
            elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT) and not math.isfinite(item):
                raise _refuse(where, f"{item} is not a finite number")


def _non_negative(where: str, **values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise _refuse(f"{where}.{name}", f"{value} is negative")


def _stream_config(request: pb.StreamConfig) -> None:
    s = request.scalingPolicy
    if request.HasField("scalingPolicy"):
        if s.minNumSegments > MAX_SEGMENTS_PER_EPOCH:
            raise _refuse("scalingPolicy.minNumSegments",
                          f"{s.minNumSegments} segments; a stream has at most {MAX_SEGMENTS_PER_EPOCH} "
                          "segments in an epoch")
        if s.scaleFactor > MAX_SCALE_FACTOR:
            raise _refuse("scalingPolicy.scaleFactor", f"{s.scaleFactor}; at most {MAX_SCALE_FACTOR}")
        _non_negative("scalingPolicy", targetRate=s.targetRate, scaleFactor=s.scaleFactor)
    if request.HasField("retentionPolicy"):
        r = request.retentionPolicy
        _non_negative("retentionPolicy", retentionParam=r.retentionParam, retentionMax=r.retentionMax)
    _non_negative("StreamConfig", timestampAggregationTimeout=request.timestampAggregationTimeout,
                  rolloverSizeBytes=request.rolloverSizeBytes)


def _kvt_config(request: pb.KeyValueTableConfig) -> None:
    _stored_size(request)
    if request.partitionCount <= 0 or request.partitionCount > MAX_KVT_PARTITIONS:
        raise _refuse("partitionCount", f"{request.partitionCount}; a key-value table has 1 to "
                                        f"{MAX_KVT_PARTITIONS} partitions")
    _non_negative("KeyValueTableConfig", primaryKeyLength=request.primaryKeyLength,
                  secondaryKeyLength=request.secondaryKeyLength, rolloverSizeBytes=request.rolloverSizeBytes)
    if request.primaryKeyLength + request.secondaryKeyLength > MAX_KVT_KEY_LENGTH:
        raise _refuse("primaryKeyLength + secondaryKeyLength",
                      f"{request.primaryKeyLength + request.secondaryKeyLength} bytes; keys have at most "
                      f"{MAX_KVT_KEY_LENGTH} bytes")


def _stored_size(request: Message) -> None:
    size = request.ByteSize()
    if size > MAX_METADATA_VALUE:
        raise _refuse(type(request).__name__, f"{size} bytes; a stored configuration has at most "
                                              f"{MAX_METADATA_VALUE} bytes")


def _reader_group(request: pb.ReaderGroupConfiguration) -> None:
    """The timing fields are only stored and echoed (``automaticCheckpointIntervalMillis`` <= 0 disables automatic
    checkpoints, ``generation`` -1 means "default"), so only the size and the retention type are checked."""
    _stored_size(request)
    if request.retentionType not in (0, 1, 2):
        raise _refuse("retentionType", f"unknown value {request.retentionType}; known: 0 (NONE), "
                                       "1 (MANUAL_RELEASE_AT_USER_STREAMCUT), 2 (AUTOMATIC_RELEASE_AT_LAST_CHECKPOINT)")


def hex_token(text: str, where: str = "continuationToken") -> bytes:
    """A list page token: hex of a table iteration token ('' = from the start)."""
    if len(text) > MAX_TOKEN_LENGTH:
        raise _refuse(where, f"a token of {len(text)} characters; this server's tokens have at most "
                             f"{MAX_TOKEN_LENGTH}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise _refuse(where, "not a token this server issued (expected the hex token of the previous page)") \
            from None


def index_token(text: str, where: str = "continuationToken") -> int:
    """A list page token that counts the names already listed ('' = 0)."""
    if not text:
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise _refuse(where, "not a token this server issued (expected the decimal token of the previous page)")
    return int(text)


def _scale(request: pb.ScaleRequest) -> None:
    if len(request.newKeyRanges) > MAX_SEGMENTS_PER_EPOCH:
        raise _refuse("newKeyRanges", f"{len(request.newKeyRanges)} ranges; a stream has at most "
                                      f"{MAX_SEGMENTS_PER_EPOCH} segments in an epoch")
    for seg_id in request.sealedSegments:
        if seg_id < 0:
            raise _refuse("sealedSegments", f"segment id {seg_id} is negative")
    for entry in request.newKeyRanges:
        if not 0.0 <= entry.start < entry.end <= 1.0:
            raise _refuse("newKeyRanges", f"range [{entry.start}, {entry.end}) is not within [0, 1) "
                                          "with start < end")


def _epoch(where: str, epoch: int) -> None:
    if epoch < 0:
        raise _refuse(where, f"epoch {epoch} is negative")


def _lease(where: str, lease: int) -> None:
    if lease < 0 or lease > MAX_LEASE_MS:
        raise _refuse(where, f"lease {lease} ms is outside [0, {MAX_LEASE_MS}] ms")


_RULES: dict[str, Callable[[Any], object]] = {
    "createStream": _stream_config,
    "updateStream": _stream_config,
    "createKeyValueTable": _kvt_config,
    "createReaderGroup": _reader_group,
    "updateReaderGroup": _reader_group,
    "truncateStream": lambda r: _check_cut("cut", r.cut, future_entries=False),
    "scale": _scale,
    "listScopes": lambda r: hex_token(r.continuationToken.token),
    "listStreamsInScope": lambda r: hex_token(r.continuationToken.token),
    "listKeyValueTablesInScope": lambda r: hex_token(r.continuationToken.token),
    "listStreamsInScopeForTag": lambda r: index_token(r.continuationToken.token),
    "getEpochSegments": lambda r: _epoch("epoch", r.epoch),
    "checkScale": lambda r: _epoch("epoch", r.epoch),
    "getSegmentsImmediatelyFollowing": lambda r: _non_negative("SegmentId", segmentId=r.segmentId),
    "getSegmentsImmediatlyFollowing": lambda r: _non_negative("SegmentId", segmentId=r.segmentId),
    "createTransaction": lambda r: _lease("lease", r.lease),
    "pingTransaction": lambda r: _lease("lease", r.lease),
}


def check_request(rpc: str, request: Message) -> None:
    """Raise ``InvalidArgumentError`` naming the field if ``request`` of ``rpc`` is out of bounds."""
    _walk(request, type(request).__name__, rpc in CREATE_RPCS)
    rule = _RULES.get(rpc)
    if rule is not None:
        rule(request)
