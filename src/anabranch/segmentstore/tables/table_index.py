"""The in-memory index of one table segment, and the limits on keys and values.

``TableIndex`` mirrors the records in ``[start_offset, length)``: each live key's (version, value), the offset
of every batch (ascending) and ``live_bytes``, the log bytes the live entries' records take (compaction compares
it with ``length - start_offset``). It changes only after an append or a truncation succeeded.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from anabranch.segmentstore.tables.compaction import entry_size
from anabranch.segmentstore.tables.errors import TableArgumentError
from anabranch.segmentstore.tables.records import RECORD_HEADER, Record, RecordKind

MAX_KEY_LENGTH = 8192
MAX_VALUE_LENGTH = 1024 * 1024 - 8192


@dataclass(slots=True)
class TableIndex:
    """The in-memory state of one table: key -> (version, value), batch offsets, live bytes, log bounds."""

    start_offset: int = 0
    length: int = 0
    live_bytes: int = 0
    index: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)
    batch_starts: array[int] = field(default_factory=lambda: array("q"))
    """Offsets of the batches, packed (8 bytes each, not a list of int objects: a hot table such as a scope's stream
    index gets a batch per stream created)."""
    sorted_keys: list[bytes] | None = None

    def apply(self, records: Sequence[Record], batch_offset: int, new_length: int) -> None:
        for record in records:
            old = self.index.get(record.key)
            if old is not None:
                self.live_bytes -= entry_size(record.key, old[1])
            if record.kind is RecordKind.PUT:
                if old is None:
                    self.sorted_keys = None
                self.index[record.key] = (record.offset, record.value)
                self.live_bytes += entry_size(record.key, record.value)
            elif old is not None:
                del self.index[record.key]
                self.sorted_keys = None
        self.batch_starts.append(batch_offset)
        self.length = new_length

    def truncated(self, offset: int) -> None:
        self.start_offset = offset
        del self.batch_starts[: bisect.bisect_left(self.batch_starts, offset)]

    def keys_in_order(self) -> list[bytes]:
        if self.sorted_keys is None:
            self.sorted_keys = sorted(self.index)
        return self.sorted_keys


def check_key(key: bytes) -> None:
    if not key:
        raise TableArgumentError("table keys must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise TableArgumentError(f"table key of {len(key)} bytes exceeds the limit of {MAX_KEY_LENGTH} bytes")


def check_value(value: bytes) -> None:
    if len(value) > MAX_VALUE_LENGTH:
        raise TableArgumentError(f"table value of {len(value)} bytes exceeds the limit of {MAX_VALUE_LENGTH} bytes")


def record_end(record: Record) -> int:
    return record.offset + RECORD_HEADER.size + len(record.key) + len(record.value)
