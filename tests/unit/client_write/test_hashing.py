"""Routing-key hashing matches the official clients; the key → segment map follows scaling."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from anabranch.client.hashing import SegmentWithRange, StreamSegments, hash_routing_key, u64_to_fraction
from anabranch.model.keyspace import initial_ranges


def test_hello_matches_the_rust_client_vector() -> None:
    # pravega-client-rust shared/src/lib.rs test_hash: "hello" → 0.658716230571337
    assert hash_routing_key("hello") == 0.658716230571337


def test_fraction_bounds() -> None:
    assert u64_to_fraction(0) == 0.0
    assert 0.0 <= u64_to_fraction(2**64 - 1) < 1.0


@given(st.text())
def test_any_key_lands_in_unit_interval(key: str) -> None:
    assert 0.0 <= hash_routing_key(key) < 1.0


def _segments(count: int) -> list[SegmentWithRange]:
    return [SegmentWithRange("sc", "st", i, low, high) for i, (low, high) in enumerate(initial_ranges(count))]


@given(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), st.integers(min_value=1, max_value=64))
def test_position_selects_the_owning_segment(position: float, count: int) -> None:
    segments = StreamSegments(_segments(count))
    chosen = segments.segment_for_position(position)
    assert chosen.min_key <= position <= chosen.max_key


def test_boundary_goes_to_lower_segment_like_ceiling_entry() -> None:
    segments = StreamSegments(_segments(2))
    assert segments.segment_for_position(0.5).segment_id == 0
    assert segments.segment_for_position(0.50000001).segment_id == 1


def test_split_then_merge_replacement_keeps_full_cover() -> None:
    segments = StreamSegments(_segments(2))
    split = [SegmentWithRange("sc", "st", (1 << 32) | 2, 0.0, 0.25),
             SegmentWithRange("sc", "st", (1 << 32) | 3, 0.25, 0.5)]
    after = segments.replace(0, split)
    assert [s.segment_id for s in after.segments] == [(1 << 32) | 2, (1 << 32) | 3, 1]
    merged = SegmentWithRange("sc", "st", (2 << 32) | 4, 0.25, 1.0)
    step = after.replace((1 << 32) | 3, [merged])
    assert step.segment_for_position(0.3).segment_id == (2 << 32) | 4
    assert step.segment_for_position(0.7).segment_id == 1
    final = step.replace(1, [merged])
    assert [(s.min_key, s.max_key) for s in final.segments] == [(0.0, 0.25), (0.25, 1.0)]


def test_unknown_sealed_segment_changes_nothing() -> None:
    segments = StreamSegments(_segments(1))
    assert segments.replace(99, []) is segments


def test_non_ascii_keys_follow_the_rust_padding() -> None:
    from anabranch.client.hashing import hash_routing_key_java

    assert hash_routing_key("plain") == hash_routing_key_java("plain")
    assert hash_routing_key("ünï") != hash_routing_key_java("ünï")
