"""Key-range math, scale validation, successors and stream-cut rules (pure functions)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anabranch.controller.epochs import (
    EpochRecord,
    ScaleInputInvalidError,
    ScalePreconditionError,
    all_segments,
    cut_not_behind,
    duplicate_epoch,
    first_epoch,
    is_cut_valid,
    next_epoch,
    segments_between,
    successors,
    validate_scale,
)
from anabranch.model.keyspace import initial_ranges, merge_blocks, split_range


@pytest.mark.parametrize("n", [1, 2, 3, 7, 49, 98, 103, 107, 161])
def test_initial_ranges_tile_and_end_at_one(n: int) -> None:
    ranges = initial_ranges(n)
    assert ranges[0][0] == 0.0 and ranges[-1][1] == 1.0
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(n - 1))
    assert merge_blocks(ranges) == [(0.0, 1.0)]


def test_scale_validation() -> None:
    e0 = first_epoch(initial_ranges(2), 0, 100)
    validate_scale(e0, [1], [(0.5, 0.75), (0.75, 1.0)], 1)
    with pytest.raises(ScalePreconditionError):
        validate_scale(e0, [5], [(0.5, 1.0)], 1)
    with pytest.raises(ScaleInputInvalidError):
        validate_scale(e0, [1], [(0.5, 0.7), (0.75, 1.0)], 1)
    with pytest.raises(ScaleInputInvalidError):
        validate_scale(e0, [1], [(0.5, 0.9)], 1)
    with pytest.raises(ScaleInputInvalidError):
        validate_scale(e0, [1], [(0.75, 0.5)], 1)
    with pytest.raises(ScalePreconditionError):
        validate_scale(e0, [0, 1], [(0.0, 1.0)], 2)


def test_successors_carry_all_predecessors() -> None:
    e0 = first_epoch(initial_ranges(2), 0, 100)
    e1 = next_epoch(e0, [0, 1], [(0.0, 1.0)], 2, 200)
    merged = e1.segments[0]
    assert merged.id == (1 << 32) | 2
    for old in (0, 1):
        ((succ, preds),) = successors(old, [e0, e1])
        assert succ.id == merged.id and sorted(preds) == [0, 1]
    assert successors(merged.id, [e1]) == []
    e2 = next_epoch(e1, [merged.id], split_range(0.0, 1.0, 3), 3, 300)
    follow = successors(merged.id, [e1, e2])
    assert [s.number for s, _ in follow] == [3, 4, 5] and all(p == [merged.id] for _, p in follow)
    assert follow[-1][0].key_end == 1.0


def test_stream_cuts() -> None:
    e0 = first_epoch(initial_ranges(2), 0, 100)
    e1 = next_epoch(e0, [1], [(0.5, 0.75), (0.75, 1.0)], 2, 200)
    segs = all_segments([e0, e1])
    a, c, d = 0, (1 << 32) | 2, (1 << 32) | 3
    assert is_cut_valid({0: 10, 1: 5}, segs)
    assert is_cut_valid({a: 10, c: 0, d: 7}, segs)
    assert is_cut_valid({a: 10, 1: 5, c: -1, d: -1}, segs)
    assert not is_cut_valid({a: 10}, segs)
    assert not is_cut_valid({a: 1, 1: 2, c: 3}, segs)
    assert not is_cut_valid({}, segs)
    assert cut_not_behind({a: 10, c: 0, d: 0}, {0: 10, 1: 5}, segs)
    assert not cut_not_behind({0: 9, 1: 5}, {0: 10, 1: 5}, segs)
    assert not cut_not_behind({0: 10, 1: 5}, {a: 10, c: 0, d: 0}, segs)
    between = segments_between({}, {}, e0, e1, segs)
    assert {s.id for s in between} == {0, 1, c, d}
    assert {s.id for s in segments_between({a: 0, c: 0, d: 0}, {}, e0, e1, segs)} == {0, c, d}


def test_duplicate_epoch_points_back() -> None:
    e0 = first_epoch(initial_ranges(3), 0, 100)
    dup = duplicate_epoch(e0, 4, 10, 500)
    assert dup.reference_epoch == 0 and [s.number for s in dup.sorted_segments()] == [10, 11, 12]
    assert [s.range for s in dup.sorted_segments()] == [s.range for s in e0.sorted_segments()]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=4), st.lists(st.tuples(st.booleans(), st.integers(1, 4), st.randoms()),
                                                         min_size=1, max_size=12))
def test_random_split_merge_sequences_keep_the_key_space_tiled(initial: int, steps: list) -> None:
    """Random splits and merges of adjacent segments always pass validation and keep an exact tiling; every
    sealed segment's successors cover exactly its range and list it among their predecessors."""
    epochs: list[EpochRecord] = [first_epoch(initial_ranges(initial), 0, 0)]
    next_number = initial
    for split, parts, rnd in steps:
        current = epochs[-1]
        ordered = current.sorted_segments()
        rng: random.Random = rnd
        if split or len(ordered) == 1:
            victim = rng.choice(ordered)
            sealed, ranges = [victim.id], split_range(victim.key_start, victim.key_end, parts + 1)
        else:
            i = rng.randrange(len(ordered) - 1)
            sealed = [ordered[i].id, ordered[i + 1].id]
            ranges = [(ordered[i].key_start, ordered[i + 1].key_end)]
        validate_scale(current, sealed, ranges, 1)
        epochs.append(next_epoch(current, sealed, ranges, next_number, len(epochs)))
        next_number += len(ranges)
        assert merge_blocks([s.range for s in epochs[-1].segments]) == [(0.0, 1.0)]
        assert epochs[-1].sorted_segments()[-1].key_end == 1.0
        for seg_id in sealed:
            follow = successors(seg_id, epochs)
            sealed_seg = current.find(seg_id)
            assert sealed_seg is not None and follow
            assert all(seg_id in preds for _, preds in follow)
            (block,) = merge_blocks([s.range for s, _ in follow])
            assert block[0] <= sealed_seg.key_start and block[1] >= sealed_seg.key_end
