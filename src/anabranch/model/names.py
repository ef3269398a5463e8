"""Pravega names: scopes, streams, segment ids and qualified segment names.

Owns the naming rules shared by the controller, the segment store and the client:
``segmentId = epoch << 32 | number``; ``scope/stream/number.#epoch.epoch``; transaction,
transient and table-segment suffixes. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from anabranch.errors import InvalidNameError

SYSTEM_SCOPE = "_system"
TABLES_TOKEN = "_tables"
MARK_PREFIX = "_MARK"
READER_GROUP_STREAM_PREFIX = "_RG"
KVTABLE_SUFFIX = "_kvtable"
EPOCH_DELIMITER = ".#epoch."
TRANSACTION_DELIMITER = "#transaction."
TRANSIENT_DELIMITER = "#transient."

_USER_NAME = re.compile(r"[A-Za-z0-9.\-]+")
_INTERNAL_NAME = re.compile(r"_?[A-Za-z0-9.\-]+")
MAX_SCOPE_NAME = 255
MAX_STREAM_NAME = 255


def is_valid_user_name(name: str, max_length: int = MAX_STREAM_NAME) -> bool:
    return 0 < len(name) <= max_length and _USER_NAME.fullmatch(name) is not None


def is_valid_name(name: str, max_length: int = MAX_STREAM_NAME) -> bool:
    """The controller's create-path rule: user names, plus an optional leading underscore."""
    return 0 < len(name) <= max_length and _INTERNAL_NAME.fullmatch(name) is not None


def validate_name(kind: str, name: str, allow_internal: bool = True) -> str:
    ok = is_valid_name(name) if allow_internal else is_valid_user_name(name)
    if not ok:
        raise InvalidNameError(
            f"invalid {kind} name {name!r}: use 1-255 characters from A-Z, a-z, 0-9, '.' and '-'"
            + (" (a leading '_' marks internal names)" if allow_internal else "")
        )
    return name


def segment_id(number: int, epoch: int) -> int:
    return (epoch << 32) | (number & 0xFFFFFFFF)


def segment_number(seg_id: int) -> int:
    return seg_id & 0xFFFFFFFF


def segment_epoch(seg_id: int) -> int:
    return seg_id >> 32


def qualified_segment_name(scope: str, stream: str, seg_id: int) -> str:
    return f"{scope}/{stream}/{segment_number(seg_id)}{EPOCH_DELIMITER}{segment_epoch(seg_id)}"


def txn_hex(txn_id: uuid.UUID) -> str:
    return f"{txn_id.int:032x}"


def transaction_segment_name(parent: str, txn_id: uuid.UUID) -> str:
    return f"{parent}{TRANSACTION_DELIMITER}{txn_hex(txn_id)}"


def transient_segment_name(parent: str, writer_id: uuid.UUID, rand: uuid.UUID) -> str:
    return f"{parent}{TRANSIENT_DELIMITER}{writer_id.int:032x}.{rand.int:032x}"


def txn_epoch(txn_id: uuid.UUID) -> int:
    return txn_id.int >> 96


def parent_segment_name(name: str) -> str:
    """The stream segment a transaction or transient segment belongs to (itself otherwise)."""
    for delimiter in (TRANSACTION_DELIMITER, TRANSIENT_DELIMITER):
        cut = name.find(delimiter)
        if cut >= 0:
            return name[:cut]
    return name


def is_table_segment_name(name: str) -> bool:
    parts = name.split("/")
    return len(parts) >= 2 and parts[1] == TABLES_TOKEN


def table_segment_name(scope: str, *tokens: str) -> str:
    """Controller metadata tables: ``<scope>/_tables/<tokens...>``."""
    return "/".join((scope, TABLES_TOKEN, *tokens))


def mark_stream_name(stream: str) -> str:
    return MARK_PREFIX + stream


@dataclass(frozen=True, slots=True)
class ScopedSegment:
    """A parsed ``scope/stream/number.#epoch.epoch`` name. Its hash is computed once: readers use segments as
    dictionary keys once per event."""

    scope: str
    stream: str
    segment_id: int
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.scope, self.stream, self.segment_id)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def qualified_name(self) -> str:
        return qualified_segment_name(self.scope, self.stream, self.segment_id)

    @classmethod
    def parse(cls, name: str) -> ScopedSegment:
        base = parent_segment_name(name)
        try:
            scope, stream, last = base.split("/", 2)
            number_text, epoch_text = last.split(EPOCH_DELIMITER)
            return cls(scope, stream, segment_id(int(number_text), int(epoch_text)))
        except ValueError as exc:
            raise InvalidNameError(f"not a stream segment name: {name!r}") from exc
