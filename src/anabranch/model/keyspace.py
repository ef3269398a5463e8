"""The routing key space [0, 1): key ranges, the initial split of a stream, and contiguous blocks.

Every segment owns a half-open range [low, high). The segments of one epoch tile [0, 1) exactly;
the last range always ends at exactly 1.0 (floating-point division can leave 0.9999999999999999,
which the Rust client rejects). Shared by the controller (epochs, scaling, auto-scale) and clients.
"""

from __future__ import annotations

from collections.abc import Sequence

Range = tuple[float, float]


def initial_ranges(count: int) -> list[Range]:
    """Segment i of n covers [i/n, (i+1)/n) as Java computes it; the last upper bound is forced to 1.0."""
    if count <= 0:
        raise ValueError("a stream needs at least one segment")
    step = 1.0 / count
    ranges = [(i * step, (i + 1) * step) for i in range(count)]
    ranges[-1] = (ranges[-1][0], 1.0)
    return ranges


def split_range(start: float, end: float, parts: int) -> list[Range]:
    """``parts`` equal sub-ranges of [start, end); the last ends exactly at ``end``."""
    width = (end - start) / parts
    bounds = [start + i * width for i in range(parts)] + [end]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def merge_blocks(ranges: Sequence[Range]) -> list[Range]:
    """Sort and merge ranges that touch exactly or overlap into contiguous blocks."""
    blocks: list[Range] = []
    for start, end in sorted(ranges):
        if blocks and start <= blocks[-1][1]:
            blocks[-1] = (blocks[-1][0], max(blocks[-1][1], end))
        else:
            blocks.append((start, end))
    return blocks
