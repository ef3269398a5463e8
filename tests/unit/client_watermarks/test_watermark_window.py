"""The pure part of readers' time windows: decoding watermarks, ordering positions against them, the tracker."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anabranch.client.watermark_reader import (
    UNKNOWN_WINDOW,
    ReaderPosition,
    ReaderWatermarks,
    StreamNotInReaderGroupError,
    TimeWindow,
    Watermark,
    WindowTracker,
    compare,
)
from anabranch.controller.watermarks import Watermark as ControllerWatermark
from anabranch.errors import DataCorruptionError
from anabranch.model.names import segment_id

ZERO = segment_id(0, 0)
"""Epoch 0: one segment over [0, 1); epoch 1 splits it into LOW [0, 0.5) and HIGH [0.5, 1)."""
LOW, HIGH = segment_id(1, 1), segment_id(2, 1)
RANGES = {ZERO: (0.0, 1.0), LOW: (0.0, 0.5), HIGH: (0.5, 1.0)}


@dataclass(frozen=True)
class Point:
    """A position or cut of the test stream: epoch 0 at ``a`` in ZERO, or epoch 1 at ``a`` in LOW, ``b`` in HIGH."""

    epoch: int
    a: int
    b: int = 0

    def offsets(self) -> dict[int, int]:
        return {ZERO: self.a} if self.epoch == 0 else {LOW: self.a, HIGH: self.b}

    def position(self) -> ReaderPosition:
        return {s: (*RANGES[s], o) for s, o in self.offsets().items()}

    def cut(self) -> tuple[tuple[int, float, float, int], ...]:
        return tuple(sorted(((s, *RANGES[s], o) for s, o in self.offsets().items()), key=lambda e: e[1]))

    def __le__(self, other: Point) -> bool:
        if self.epoch != other.epoch:
            return self.epoch < other.epoch
        return self.a <= other.a and self.b <= other.b


def mark(lower: int, point: Point, upper: int | None = None) -> Watermark:
    return Watermark(lower, lower if upper is None else upper, point.cut())


# --- decoding ---------------------------------------------------------------------------------------------


def test_decodes_what_the_controller_writes() -> None:
    written = ControllerWatermark(10, 20, ((LOW, 0.0, 0.5, 7), (HIGH, 0.5, 1.0, 9)))
    event = written.to_event()
    assert Watermark.decode(event[8:]) == Watermark(10, 20, ((LOW, 0.0, 0.5, 7), (HIGH, 0.5, 1.0, 9)))


@pytest.mark.parametrize("payload", [b"", b"{", b'{"lowerTimeBound": 1}', b'{"lowerTimeBound": 1, '
                                     b'"upperTimeBound": 2, "streamCut": [[1, 2]]}'])
def test_malformed_watermarks_are_data_corruption(payload: bytes) -> None:
    with pytest.raises(DataCorruptionError, match="malformed watermark"):
        Watermark.decode(payload)


# --- compare ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("position", "cut", "expected"), [
    (Point(0, 5), Point(0, 5), 0),
    (Point(0, 6), Point(0, 5), 1),
    (Point(0, 4), Point(0, 5), -1),
    (Point(1, 5, 5), Point(1, 5, 5), 0),
    (Point(1, 6, 5), Point(1, 5, 5), 1),
    (Point(1, 5, 4), Point(1, 5, 5), -1),
    (Point(1, 6, 4), Point(1, 5, 5), 0),
    (Point(1, 0, 0), Point(0, 100), 1),
    (Point(0, 100), Point(1, 0, 0), -1),
])
def test_compare(position: Point, cut: Point, expected: int) -> None:
    assert compare(position.position(), mark(1, cut)) == expected


def test_compare_ignores_segments_that_do_not_overlap() -> None:
    only_low = {LOW: (0.0, 0.5, 10)}
    high_cut = Watermark(1, 1, ((HIGH, 0.5, 1.0, 99),))
    assert compare(only_low, high_cut) == 0
    assert compare({}, mark(1, Point(0, 3))) == 0


def test_compare_with_a_segment_between_an_older_and_a_newer_cut_segment_is_undecided() -> None:
    middle = segment_id(3, 2)
    position = {middle: (0.25, 0.75, 0)}
    cut = Watermark(1, 1, ((LOW, 0.0, 0.5, 4), (segment_id(4, 3), 0.5, 1.0, 0)))
    assert compare(position, cut) == 0


# --- the tracker ------------------------------------------------------------------------------------------


def test_window_over_a_hand_made_sequence() -> None:
    tracker = WindowTracker()
    assert tracker.window == UNKNOWN_WINDOW
    assert tracker.advance(Point(0, 0).position()) is True
    tracker.feed([mark(100, Point(0, 10), 105), mark(200, Point(0, 20), 210), mark(300, Point(0, 30), 310)])

    assert tracker.advance(Point(0, 0).position()) is False
    assert tracker.window == TimeWindow(None, 105)
    assert len(tracker.fetched) == 2, "marks are consumed only until one after the position is known"

    assert tracker.advance(Point(0, 10).position()) is False
    assert tracker.window == TimeWindow(None, 105), "a cut equal to the position is not passed, but bounds it"

    assert tracker.advance(Point(0, 25).position()) is False
    assert tracker.window == TimeWindow(200, 310)

    assert tracker.advance(Point(0, 31).position()) is True
    assert tracker.window == TimeWindow(300, None)
    assert tracker.window.is_near_tail_of_stream and not tracker.window.is_near_head_of_stream

    tracker.feed([mark(400, Point(1, 0, 0), 420)])
    assert tracker.advance(Point(0, 40).position()) is False
    assert tracker.window == TimeWindow(300, 420), "a cut in the successors is after any offset of the predecessor"
    assert tracker.advance(Point(1, 1, 0).position()) is True
    assert tracker.window == TimeWindow(400, None)


def test_a_mixed_position_waits_for_the_cut_on_every_segment() -> None:
    tracker = WindowTracker()
    tracker.feed([mark(100, Point(1, 10, 10), 110), mark(200, Point(1, 20, 20), 220)])
    tracker.advance(Point(1, 15, 5).position())
    assert tracker.window == TimeWindow(None, 220), "the first cut is behind the position in LOW"
    tracker.advance(Point(1, 15, 8).position())
    assert tracker.window == TimeWindow(None, 220)
    tracker.advance(Point(1, 25, 10).position())
    assert tracker.window == TimeWindow(100, None), "past the second cut in LOW: no watermark bounds what was read"
    tracker.advance(Point(1, 25, 25).position())
    assert tracker.window == TimeWindow(200, None)


# --- properties -------------------------------------------------------------------------------------------


@st.composite
def chains(draw: st.DrawFn, min_size: int, max_size: int) -> list[Point]:
    """A non-decreasing chain of points (a stream cut never moves back)."""
    size = draw(st.integers(min_size, max_size))
    switch = draw(st.integers(0, size))
    points: list[Point] = []
    a = b = 0
    for i in range(size):
        if i == switch:
            a, b = draw(st.integers(0, 5)), draw(st.integers(0, 5))
        else:
            a, b = a + draw(st.integers(0, 5)), b + draw(st.integers(0, 5))
        points.append(Point(0, a) if i < switch else Point(1, a, b))
    return points


def oracle(position: Point, marks: list[tuple[Point, Watermark]]) -> TimeWindow:
    """The window by definition: the newest watermark passed and the first one at or after the position."""
    passed = [m.lower_time_bound for cut, m in marks if cut <= position and cut != position]
    ahead = [m.upper_time_bound for cut, m in marks if position <= cut]
    return TimeWindow(passed[-1] if passed else None, ahead[0] if ahead else None)


@settings(max_examples=300, deadline=None)
@given(cuts=chains(0, 12), positions=chains(1, 12), data=st.data())
def test_tracker_matches_the_definition(cuts: list[Point], positions: list[Point], data: st.DataObject) -> None:
    marks = [mark(10 * (i + 1), cut, 10 * (i + 1) + data.draw(st.integers(0, 9))) for i, cut in enumerate(cuts)]
    tracker = WindowTracker()
    fed = 0
    previous = UNKNOWN_WINDOW
    for position in positions:
        more = data.draw(st.integers(0, len(marks) - fed))
        tracker.feed(marks[fed:fed + more])
        fed += more
        wants_more = tracker.advance(position.position())
        window = tracker.window
        assert window == oracle(position, list(zip(cuts, marks[:fed], strict=False)))
        assert wants_more == all(compare(position.position(), m) >= 0 for m in marks[:fed])
        if previous.lower_time_bound is not None:
            assert window.lower_time_bound is not None and window.lower_time_bound >= previous.lower_time_bound
        previous = window


@given(chains(2, 2))
def test_chains_are_ordered(pair: list[Point]) -> None:
    first, second = pair
    assert first <= second
    assert compare(second.position(), mark(1, first)) >= 0


# --- the per-reader set -----------------------------------------------------------------------------------


async def test_a_stream_outside_the_group_is_refused_and_a_new_one_starts_unknown() -> None:
    watermarks = ReaderWatermarks([("sc", "st")], None, None)  # type: ignore[arg-type]
    with pytest.raises(StreamNotInReaderGroupError, match="does not read sc/other; it reads sc/st"):
        watermarks.time_window("sc", "other")
    assert watermarks.time_window("sc", "st") == (UNKNOWN_WINDOW, True)
    assert watermarks.time_window("sc", "st") == (UNKNOWN_WINDOW, False)
