"""Unit tests of the JetStream log's layout (sans-IO): names, splitting, reassembly with fencing, and the
sequence index that truncation relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anabranch.errors import DataCorruptionError
from anabranch.storage.jetstream_log_format import (
    RecordAssembler,
    SequenceIndex,
    check_prefix,
    epoch_subject,
    marker_headers,
    parse_headers,
    record_headers,
    split,
    stream_name,
    subject_epoch,
)


def test_names_and_subjects() -> None:
    assert stream_name("anabranch-prod", 7) == "anabranch-prod-c7"
    assert epoch_subject("anabranch-prod", 7, 12) == "anabranch-prod.c7.e12"
    assert subject_epoch("anabranch-prod", 7, "anabranch-prod.c7.e12") == 12
    assert subject_epoch("anabranch-prod", 7, "anabranch-prod.c17.e12") is None
    assert subject_epoch("anabranch-prod", 7, "anabranch-prod.c7.ex") is None
    for bad in ("", "a.b", "a b", "a*", "x" * 65):
        with pytest.raises(ValueError, match="stream prefix"):
            check_prefix(bad)


def test_split_keeps_bytes_and_limits_pieces() -> None:
    assert [bytes(p) for p in split(b"")] == [b""]
    assert [bytes(p) for p in split(b"abcdefg", 3)] == [b"abc", b"def", b"g"]
    assert [bytes(p) for p in split(b"abcdef", 3)] == [b"abc", b"def"]
    assert [bytes(p) for p in split(b"abc", 3)] == [b"abc"]


def test_headers_round_trip_and_garbage_is_corruption() -> None:
    assert parse_headers(1, record_headers(4, 9)).sequence == 9
    parsed = parse_headers(1, record_headers(4, 9, 2, 3))
    assert (parsed.epoch, parsed.part, parsed.parts, parsed.marker) == (4, 2, 3, False)
    assert parse_headers(1, marker_headers(5, 8)).marker
    for bad in (None, {}, {"Anabranch-Epoch": "x", "Anabranch-Seq": "1"},
                {**record_headers(1, 1), "Anabranch-Part": "4/3"}):
        with pytest.raises(DataCorruptionError, match="stream message 6 is not a Tier-1 log message"):
            parse_headers(6, bad)


def feed_all(assembler: RecordAssembler, messages: list[tuple[dict[str, str], bytes]]) -> list[tuple[int, bytes]]:
    out = []
    for stream_sequence, (headers, data) in enumerate(messages, start=1):
        record = assembler.feed(stream_sequence, headers, data)
        if record is not None:
            out.append(record)
    return out


def test_assembler_reassembles_and_drops_markers_stale_and_torn_records() -> None:
    messages = [
        (marker_headers(1, 0), b""),
        (record_headers(1, 1), b"a"),
        (record_headers(1, 2, 1, 2), b"b1"),
        (record_headers(1, 2, 2, 2), b"b2"),
        (record_headers(1, 3, 1, 2), b"torn"),   # the owner of epoch 1 died mid-record
        (marker_headers(2, 3), b""),
        (record_headers(1, 4), b"zombie"),       # an older epoch after a newer marker
        (record_headers(2, 4, 2, 2), b"orphan"),  # a second piece without its first
        (record_headers(2, 5), b"c"),
    ]
    assembler = RecordAssembler()
    assert feed_all(assembler, messages) == [(1, b"a"), (2, b"b1b2"), (5, b"c")]
    assert (assembler.dropped_stale, assembler.dropped_partial, assembler.fence_epoch) == (1, 2, 2)
    assert assembler.index.stream_sequence(1) == 2
    assert assembler.index.stream_sequence(2) == 4
    assert assembler.index.stream_sequence(5) == 9


def test_index_is_unknown_below_the_first_record_and_forgets() -> None:
    index = SequenceIndex()
    assert index.stream_sequence(1) is None
    index.add(10, 15)
    index.add(11, 16)
    index.add(12, 20)
    assert index.stream_sequence(9) is None
    assert [index.stream_sequence(s) for s in (10, 11, 12, 13)] == [15, 16, 20, 20]
    index.add(12, 30)  # not after the last one: ignored
    assert index.stream_sequence(12) == 20
    index.forget_below(12)
    assert index.stream_sequence(12) == 20
    assert index.stream_sequence(11) is None


@given(st.lists(st.tuples(st.integers(1, 3), st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_index_answers_exactly_for_records_and_never_past_a_later_record(layout: list[tuple[int, bool, bool]]) -> None:
    """Records of 1-3 pieces, some preceded by a marker, some torn (at least one piece landed, never completed,
    their sequence skipped; an append that landed nothing leaves no gap): a purge of everything up to the answer
    for any sequence never removes a piece of a later complete record."""
    index = SequenceIndex()
    stream_sequence = 0
    last_piece: dict[int, int] = {}
    first_piece: dict[int, int] = {}
    for sequence, (pieces, marker_before, torn) in enumerate(layout, start=1):
        stream_sequence += 1 if marker_before else 0
        if torn:
            stream_sequence += max(1, pieces - 1)
            continue
        first_piece[sequence] = stream_sequence + 1
        stream_sequence += pieces
        last_piece[sequence] = stream_sequence
        index.add(sequence, stream_sequence)
    for sequence in range(1, len(layout) + 2):
        answer = index.stream_sequence(sequence)
        if sequence in last_piece:
            assert answer == last_piece[sequence]
        later = [first for s, first in first_piece.items() if s > sequence]
        if answer is not None and later:
            assert answer < min(later)
