"""ReadFromAnabranch's restrictions: splitting at event boundaries, tail checkpoints, the scaling rule, pickling."""

from __future__ import annotations

import itertools
import pickle

import apache_beam as beam
import pytest
from apache_beam.internal import pickler

from anabranch.beam.read import ReadFromAnabranch, _ReadTail, _Restrictions
from anabranch.beam.restrictions import (
    EventClaim,
    SegmentRange,
    SegmentRangeTracker,
    TailCut,
    TailCutTracker,
    advance_cut,
)
from anabranch.client import BytesSerializer, ClientConfig
from anabranch.errors import ConfigError
from anabranch.model.stream_cut import StreamCut

EVENTS = [0, 10, 25, 40, 60, 100]
"""Event boundaries of a range 0..100 (five events)."""


def claim_all(tracker: SegmentRangeTracker, boundaries: list[int] = EVENTS) -> list[int]:
    claimed = []
    for start, end in itertools.pairwise(boundaries):
        if not tracker.try_claim(EventClaim(start, end, boundaries[1:])):
            break
        claimed.append(start)
    return claimed


def test_range_is_read_whole_and_then_done() -> None:
    tracker = SegmentRangeTracker(SegmentRange("s", "t", 0, 0, 100))
    assert claim_all(tracker) == EVENTS[:-1]
    assert not tracker.try_claim(EventClaim(100, 100))
    tracker.check_done()
    assert tracker.current_progress().remaining_work == 0


def test_unread_range_is_not_done() -> None:
    tracker = SegmentRangeTracker(SegmentRange("s", "t", 0, 0, 100))
    tracker.try_claim(EventClaim(0, 10, EVENTS[1:]))
    with pytest.raises(ValueError, match="were not read"):
        tracker.check_done()


def test_checkpoint_splits_after_the_last_claimed_event() -> None:
    tracker = SegmentRangeTracker(SegmentRange("s", "t", 7, 0, 100))
    tracker.try_claim(EventClaim(0, 10, EVENTS[1:]))
    tracker.try_claim(EventClaim(10, 25, EVENTS[1:]))
    primary, residual = tracker.try_split(0)
    assert (primary.start, primary.stop, residual.start, residual.stop) == (0, 25, 25, 100)
    assert not tracker.try_claim(EventClaim(25, 40))
    tracker.check_done()


def test_fractional_split_lands_on_a_known_event_boundary() -> None:
    tracker = SegmentRangeTracker(SegmentRange("s", "t", 7, 0, 100))
    tracker.try_claim(EventClaim(0, 10, EVENTS[1:]))
    # Half of the remaining 90 bytes is offset 55: the next known boundary is 60.
    primary, residual = tracker.try_split(0.5)
    assert primary.stop == residual.start == 60
    assert claim_all(tracker, [10, 25, 40, 60, 100]) == [10, 25, 40]
    assert not tracker.try_claim(EventClaim(60, 100))
    tracker.check_done()


def test_no_split_where_no_boundary_is_known() -> None:
    tracker = SegmentRangeTracker(SegmentRange("s", "t", 7, 0, 100))
    tracker.try_claim(EventClaim(0, 10, [10]))
    assert tracker.try_split(0.5) is None
    assert tracker.current_restriction() == SegmentRange("s", "t", 7, 0, 100)


def test_split_ranges_together_claim_every_event_once() -> None:
    tracker = SegmentRangeTracker(SegmentRange("s", "t", 1, 0, 100))
    tracker.try_claim(EventClaim(0, 10, EVENTS[1:]))
    _, residual = tracker.try_split(0.4)
    assert residual.start == 60
    primary_rest = claim_all(tracker, [10, 25, 40, 60, 100])
    tracker.check_done()
    rest = SegmentRangeTracker(residual)
    second = claim_all(rest, [60, 100])
    rest.try_claim(EventClaim(100, 100))
    rest.check_done()
    assert [0, *primary_rest, *second] == EVENTS[:-1]


def test_claims_cannot_go_back() -> None:
    tracker = SegmentRangeTracker(SegmentRange("s", "t", 1, 0, 100))
    tracker.try_claim(EventClaim(0, 10))
    with pytest.raises(ValueError, match="before the end"):
        tracker.try_claim(EventClaim(5, 10))


def test_tail_checkpoint_resumes_from_the_claimed_cut() -> None:
    start = TailCut.of("s", "t", [(0, 0), (1, 0)])
    tracker = TailCutTracker(start)
    later = start.with_offsets({1: 80}, at=5.0)
    assert tracker.try_claim(later)
    primary, residual = tracker.try_split(0)
    assert primary.ended and primary.positions == later.positions
    assert residual == later and not residual.finished
    assert not tracker.try_claim(later.with_offsets({0: 5}))
    tracker.check_done()
    assert tracker.try_split(0.5) is None


def test_tail_never_splits_for_parallelism_and_must_end_or_checkpoint() -> None:
    tracker = TailCutTracker(TailCut.of("s", "t", [(0, 0)]))
    assert tracker.try_split(0.5) is None
    with pytest.raises(ValueError, match="without a checkpoint"):
        tracker.check_done()
    tracker.try_claim(TailCut.of("s", "t", [(0, 9)], ended=True))
    tracker.check_done()


def test_split_segment_is_replaced_by_its_successors() -> None:
    cut = TailCut.of("s", "t", [(0, 10), (1, 20)])
    after = advance_cut(cut, 0, 50, [(2, [0]), (3, [0])])
    assert dict(after.positions) == {1: 20, 2: 0, 3: 0}
    assert after.active == {1: 20, 2: 0, 3: 0}


def test_merged_successor_waits_for_every_predecessor() -> None:
    cut = TailCut.of("s", "t", [(0, 10), (1, 20)])
    first = advance_cut(cut, 0, 50, [(2, [0, 1])])
    assert dict(first.positions) == {0: 50, 1: 20}
    assert first.active == {1: 20}
    both = advance_cut(first, 1, 70, [(2, [0, 1])])
    assert dict(both.positions) == {2: 0} and not both.completed


def test_sealed_stream_finishes_the_tail() -> None:
    cut = TailCut.of("s", "t", [(0, 10), (1, 20)])
    one = advance_cut(cut, 0, 50, [])
    assert not one.finished
    both = advance_cut(one, 1, 60, [])
    assert both.finished
    assert both.stream_cut() == StreamCut("s", "t", {0: 50, 1: 60})


def test_restrictions_and_transform_pickle() -> None:
    for restriction in (SegmentRange("s", "t", 3, 10, 90), TailCut.of("s", "t", [(0, 1)], [0], last_activity=2.5)):
        assert pickle.loads(pickle.dumps(restriction)) == restriction
    transform = ReadFromAnabranch("tcp://127.0.0.1:1", [("s", "t")], start=StreamCut("s", "t", {0: 4}),
                                  end="tail", timestamp_fn=lambda v: 0)
    copy = pickler.loads(pickler.dumps(transform))
    assert copy.plan == transform.plan


def test_a_stream_cut_must_name_the_stream_read() -> None:
    with pytest.raises(ConfigError, match="no end cut for s/u"):
        ReadFromAnabranch("tcp://127.0.0.1:1", [("s", "t"), ("s", "u")], end=StreamCut("s", "t", {0: 4}))
    with pytest.raises(ConfigError, match="does not belong"):
        ReadFromAnabranch("tcp://127.0.0.1:1", [("s", "t")], start={("s", "t"): StreamCut("s", "x", {0: 4})})
    both = ReadFromAnabranch("tcp://127.0.0.1:1", [("s", "t"), ("s", "u")],
                             end={("s", "u"): StreamCut("s", "u", {1: 9}), ("s", "t"): StreamCut("s", "t", {0: 4})})
    assert both.plan.bounded and dict(both.plan.end) == {("s", "t"): ((0, 4),), ("s", "u"): ((1, 9),)}
    with pytest.raises(ConfigError, match="'head', 'tail'"):
        ReadFromAnabranch("tcp://127.0.0.1:1", [("s", "t")], start="middle")


def test_bounded_read_is_a_bounded_pcollection_and_a_tail_an_unbounded_one() -> None:
    pipeline = beam.Pipeline()
    bounded = pipeline | "b" >> ReadFromAnabranch("tcp://127.0.0.1:1", [("s", "t")], end="tail")
    tail = pipeline | "t" >> ReadFromAnabranch("tcp://127.0.0.1:1", [("s", "t")])
    assert bounded.is_bounded and not tail.is_bounded


def test_stop_cut_bounds_segments_in_it_only() -> None:
    cut = TailCut.of("s", "t", [(0, 0), (1, 5)], stop=((1, 40), (2, 7)))
    assert (cut.stop_offset(0), cut.stop_offset(1), cut.stop_offset(2)) == (None, 40, 7)
    assert TailCut.of("s", "t", [(0, 0)]).stop_offset(0) is None
    ordered = ReadFromAnabranch("tcp://127.0.0.1:1", [("s", "t")], end="tail", ordered=True)
    assert ordered.plan.bounded and not ordered.plan.as_ranges
    assert (beam.Pipeline() | ordered).is_bounded


def test_drain_stops_only_unbounded_reads() -> None:
    provider = _Restrictions()
    tail = TailCut.of("s", "t", [(0, 3)])
    ordered = TailCut.of("s", "t", [(0, 3)], stop=((0, 9),))
    segment_range = SegmentRange("s", "t", 0, 0, 9)
    assert provider.truncate(tail, tail) is None
    assert provider.truncate(ordered, ordered) == ordered
    assert provider.truncate(segment_range, segment_range) == segment_range


def test_a_set_up_dofn_pickles_without_its_connection() -> None:
    read = _ReadTail(ClientConfig("tcp://127.0.0.1:1"), BytesSerializer(), None, 1.0, None)
    read.setup()
    try:
        copy = pickler.loads(pickler.dumps(read))
    finally:
        read.teardown()
    assert copy.client.runner is None and copy.client.manager is None
    assert copy.client.config.controller_uri == read.client.config.controller_uri
