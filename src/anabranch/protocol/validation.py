"""Field checks for wire requests and a last resort that makes every reply encodable. Sans-IO, no state.

The decoder already guarantees types and frame structure (a field that does not parse closes the
connection). What it cannot know is what the server does with a value, so :func:`request_problem` checks
every request where it enters the segment store, before anything is queued or allocated:
- every segment name (also merge sources, transient parents) is non-empty and at most
  ``MAX_SEGMENT_NAME_BYTES`` of UTF-8, which leaves room for every name the server derives from it
  (``#transient.<64 hex>``, ``#transaction.<32 hex>``) within the 65,535-byte string limit of replies;
- enumerations hold known values (``scaleType`` 0, 1 or 2; a merge's attribute ``updateType`` 1 or 4), rates
  and offsets are not negative;
- counts stay under their limits (``MAX_MERGE_SOURCES``, ``MAX_TABLE_BATCH``).
A refusal becomes an ``ErrorMessage`` with the IllegalArgument code, naming the field; the connection stays
open. :func:`fit_reply` shortens the text fields of a reply that would not encode (a message quoting a long
name); :func:`refusal` builds the ErrorMessage for a request.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from anabranch.protocol.codec_fields import MAX_UTF_BYTES
from anabranch.protocol.commands import (
    ConditionalAttributeUpdate,
    CreateSegment,
    ErrorMessage,
    MergeSegments,
    MergeSegmentsBatch,
    ReadSegment,
    ReadTable,
    ReadTableEntriesDelta,
    RemoveTableKeys,
    Reply,
    Request,
    TruncateSegment,
    UpdateSegmentPolicy,
    UpdateTableEntries,
)

MAX_SEGMENT_NAME_BYTES = 8192
"""Longest segment name a request may carry (UTF-8 bytes); Pravega's own names stay far below it."""
MAX_MERGE_SOURCES = 10_000
"""Most sources one MergeSegmentsBatch may name."""
MAX_TABLE_BATCH = 10_000
"""Most keys one table request (update, remove, read) may carry; Pravega's Java client sends at most 256."""
ATTRIBUTE_UPDATE_TYPES = (ConditionalAttributeUpdate.REPLACE, ConditionalAttributeUpdate.REPLACE_IF_EQUALS)
"""The attribute updates a MergeSegments may carry (the ones Pravega's clients send)."""
SCALE_TYPES = (CreateSegment.NO_SCALE, CreateSegment.IN_KBYTES_PER_SEC, CreateSegment.IN_EVENTS_PER_SEC)
MAX_MESSAGE_BYTES = 1024
"""Longest message text the server puts in an ErrorMessage (names inside it are shortened)."""

_NAME_FIELDS = ("segment", "segment_name", "parent_segment", "target", "source")


def request_segment(request: Request) -> str:
    """The segment a request is about (its target for merges), for replies; "" if it names none."""
    for field in _NAME_FIELDS:
        value = getattr(request, field, None)
        if isinstance(value, str):
            return value
    return ""


def _name_problem(field: str, name: str) -> str | None:
    if not name:
        return f"{field} must not be empty"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_SEGMENT_NAME_BYTES:
        return f"{field} of {size} bytes exceeds the limit of {MAX_SEGMENT_NAME_BYTES} bytes"
    return None


def request_problem(request: Request) -> str | None:
    """Why ``request`` must be refused before it reaches the store, or None if its fields are acceptable."""
    for field in _NAME_FIELDS:
        value = getattr(request, field, None)
        if isinstance(value, str) and (problem := _name_problem(field, value)) is not None:
            return problem
    if isinstance(request, MergeSegmentsBatch):
        if len(request.sources) > MAX_MERGE_SOURCES:
            return f"{len(request.sources)} merge sources exceed the limit of {MAX_MERGE_SOURCES}"
        for source in request.sources:
            if (problem := _name_problem("source", source)) is not None:
                return problem
    if isinstance(request, UpdateTableEntries | RemoveTableKeys | ReadTable):
        count = len(request.entries) if isinstance(request, UpdateTableEntries) else len(request.keys)
        if count > MAX_TABLE_BATCH:
            return f"{count} table keys in one request exceed the limit of {MAX_TABLE_BATCH}"
    if isinstance(request, MergeSegments):
        for update in request.attribute_updates:
            if update.update_type not in ATTRIBUTE_UPDATE_TYPES:
                return (f"attribute updateType {update.update_type} is not supported "
                        f"({ConditionalAttributeUpdate.REPLACE} Replace, "
                        f"{ConditionalAttributeUpdate.REPLACE_IF_EQUALS} ReplaceIfEquals)")
    if isinstance(request, CreateSegment | UpdateSegmentPolicy):
        if request.scale_type not in SCALE_TYPES:
            return f"scaleType {request.scale_type} is unknown (0 no scaling, 1 kilobytes/s, 2 events/s)"
        if request.target_rate < 0:
            return f"targetRate {request.target_rate} must not be negative"
    if isinstance(request, ReadSegment) and request.offset < 0:
        return f"read offset {request.offset} must not be negative"
    if isinstance(request, TruncateSegment) and request.truncation_offset < 0:
        return f"truncation offset {request.truncation_offset} must not be negative"
    if isinstance(request, ReadTableEntriesDelta) and request.from_position < 0:
        return f"fromPosition {request.from_position} must not be negative"
    return None


def shorten(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 (at a character boundary, marked with "...")."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= max_bytes:
        return text
    return raw[: max(max_bytes - 3, 0)].decode("utf-8", "ignore") + "..."


def refusal(request: Request, message: str) -> ErrorMessage:
    """The ErrorMessage (IllegalArgument) refusing ``request``; long names are shortened so it encodes."""
    request_id = getattr(request, "request_id", -1)
    return ErrorMessage(
        request_id if isinstance(request_id, int) else -1,
        shorten(request_segment(request), MAX_SEGMENT_NAME_BYTES),
        shorten(f"{type(request).__name__} refused: {message}", MAX_MESSAGE_BYTES),
        ErrorMessage.ILLEGAL_ARGUMENT,
    )


def fit_reply(reply: Reply) -> Reply:
    """``reply`` with every text field (and text in tuples) shortened to the wire's string limit."""
    changes: dict[str, object] = {}
    for field in dataclasses.fields(cast(Any, reply)):
        value = getattr(reply, field.name)
        if isinstance(value, str) and len(value) * 3 > MAX_UTF_BYTES:
            changes[field.name] = shorten(value, MAX_UTF_BYTES)
        elif isinstance(value, tuple) and any(isinstance(v, str) for v in value):
            changes[field.name] = tuple(shorten(v, MAX_UTF_BYTES) if isinstance(v, str) else v for v in value)
    return cast(Reply, dataclasses.replace(cast(Any, reply), **changes)) if changes else reply
