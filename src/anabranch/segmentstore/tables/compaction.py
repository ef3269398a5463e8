"""When and how much of a table segment to compact (Pravega's table compaction, on our record log).

A table segment only grows: every update and removal appends a batch, and older records of the same key become
dead. Compaction reclaims the oldest part of the log, the *window* ``[start offset, window end)``:
1. scan the window (no lock needed: only compaction truncates, and one compaction runs per table at a time);
2. under the table's lock, copy the window's records that are still the current version of their key to the tail
   as ONE conditional append, exactly like an update with the same values (so they get new versions);
3. truncate the segment at the window end, which moves the start offset (Pravega's compaction offset).
Removals in the window are dropped: every older record of their key lies before them, in the window too, so
nothing can resurrect. A crash between 2 and 3 leaves the copies and the originals; the copies are newer, so the
index rebuilt from the start offset is the same. Invariants: the window end is a batch boundary; every live
entry lies at or after the start offset.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from anabranch.errors import ConfigError
from anabranch.segmentstore.tables.records import RECORD_HEADER

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CompactionPolicy:
    """Compact a table when ``length - start offset`` exceeds ``min_bytes`` and its live entries take less than
    ``max_utilization`` of it; each pass reclaims up to ``window_bytes`` of the oldest log (whole batches, at
    least one)."""

    min_bytes: int = MIB
    max_utilization: float = 0.5
    window_bytes: int = MIB

    def __post_init__(self) -> None:
        if self.min_bytes < 0 or self.window_bytes <= 0 or not 0.0 < self.max_utilization <= 1.0:
            raise ConfigError(
                f"invalid table compaction policy {self}: min_bytes must be >= 0, window_bytes > 0 and "
                "max_utilization in (0, 1]"
            )

    def needed(self, start_offset: int, length: int, live_bytes: int) -> bool:
        size = length - start_offset
        return size > self.min_bytes and live_bytes < self.max_utilization * size

    def window_end(self, start_offset: int, length: int, batch_starts: Sequence[int]) -> int:
        """The last batch boundary within ``window_bytes`` of ``start_offset`` (at least one whole batch), so a
        pass copies at most ``max(window_bytes, first batch)``; ``batch_starts[0]`` is ``start_offset``."""
        limit = start_offset + self.window_bytes
        if limit >= length:
            return length
        index = bisect.bisect_right(batch_starts, limit) - 1
        if index >= 1:
            return batch_starts[index]
        return batch_starts[1] if len(batch_starts) > 1 else length


def entry_size(key: bytes, value: bytes) -> int:
    """Bytes one live entry takes in the log (its record, not its share of a batch header)."""
    return RECORD_HEADER.size + len(key) + len(value)
