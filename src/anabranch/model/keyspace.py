"""The routing key space [0, 1): key ranges, the initial split of a stream, and range cover checks.

Every segment owns a half-open range [low, high). The segments of one epoch tile [0, 1) exactly;
the last range always ends at exactly 1.0 (floating-point division can leave 0.9999999999999999,
which the Rust client rejects).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class KeyRange:
    low: float
    high: float

    def overlaps(self, other: KeyRange) -> bool:
        return self.low < other.high and self.high > other.low

    def contains(self, position: float) -> bool:
        return self.low <= position < self.high or (self.high == 1.0 and position == 1.0)

    def split(self, parts: int) -> list[KeyRange]:
        """``parts`` equal sub-ranges; the last ends exactly at ``high``."""
        width = (self.high - self.low) / parts
        bounds = [self.low + i * width for i in range(parts)] + [self.high]
        return [KeyRange(bounds[i], bounds[i + 1]) for i in range(parts)]


def initial_ranges(count: int) -> list[KeyRange]:
    """Segment i of n covers [i/n, (i+1)/n), computed as Java does, with the last high forced to 1.0."""
    if count <= 0:
        raise ValueError("a stream needs at least one segment")
    step = 1.0 / count
    ranges = [KeyRange(i * step, (i + 1) * step) for i in range(count)]
    ranges[-1] = KeyRange(ranges[-1].low, 1.0)
    return ranges


def merged_blocks(ranges: Iterable[KeyRange]) -> list[KeyRange]:
    """Sort and merge ranges that touch exactly (prev.high == next.low) into contiguous blocks."""
    blocks: list[KeyRange] = []
    for current in sorted(ranges):
        if blocks and blocks[-1].high == current.low:
            blocks[-1] = KeyRange(blocks[-1].low, current.high)
        else:
            blocks.append(current)
    return blocks


def covers_exactly(old: Iterable[KeyRange], new: Iterable[KeyRange]) -> bool:
    """True iff ``new`` covers exactly the union of ``old``: no gap, no overlap, no extra (exact comparison)."""
    new_list = list(new)
    if any(r.low >= r.high for r in new_list):
        return False
    ordered = sorted(new_list)
    if any(a.high > b.low for a, b in zip(ordered, ordered[1:], strict=False)):
        return False
    return merged_blocks(old) == merged_blocks(new_list)


def tiles_unit_interval(ranges: Iterable[KeyRange]) -> bool:
    return merged_blocks(ranges) == [KeyRange(0.0, 1.0)]
