"""The reader-group reducer: assignment, successors after predecessors, balance, checkpoints (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anabranch.client.reader_group_state import ReaderGroupState, ReaderGroupStateError
from anabranch.model.names import ScopedSegment, segment_id


def seg(number: int, epoch: int = 0) -> ScopedSegment:
    return ScopedSegment("sc", "st", segment_id(number, epoch))


def placements(state: ReaderGroupState) -> list[ScopedSegment]:
    found = list(state.unassigned) + list(state.future)
    for segments in state.assigned.values():
        found += list(segments)
    return found


def rebalance(state: ReaderGroupState) -> ReaderGroupState:
    for _ in range(100):
        before = state
        for reader in sorted(state.readers):
            for _ in range(state.segments_to_release(reader)):
                victim = sorted(state.segments_of(reader), key=lambda s: s.segment_id)[0]
                state = state.release(reader, victim, state.segments_of(reader)[victim])
        for reader in sorted(state.readers):
            state, _ = state.acquire(reader)
        if state == before:
            return state
    raise AssertionError("rebalancing did not converge")


def test_first_reader_takes_its_share_and_second_gets_the_rest() -> None:
    state = ReaderGroupState.initial({seg(i): 0 for i in range(4)}).add_reader("a")
    state, taken = state.acquire("a")
    assert len(taken) == 4
    state = rebalance(state.add_reader("b"))
    assert sorted(len(state.segments_of(r)) for r in "ab") == [2, 2]


def test_successor_waits_for_every_predecessor() -> None:
    a, b, merged = seg(0), seg(1), seg(2, 1)
    state = ReaderGroupState.initial({a: 0, b: 0}).add_reader("r")
    state, _ = state.acquire("r")
    state = state.segment_completed("r", a, {merged: [a, b]})
    assert merged in state.future and merged not in state.unassigned
    state = state.segment_completed("r", b, {merged: [a, b]})
    assert state.unassigned == {merged: 0} and not state.future


def test_unknown_predecessor_blocks_only_while_an_older_segment_is_live() -> None:
    # after a reset, the state does not know that segment 1 (epoch 1) was read already
    old, known, successor = seg(0), seg(2, 1), seg(3, 2)
    state = ReaderGroupState.initial({old: 0, known: 0}).add_reader("r")
    state, _ = state.acquire("r")
    state = state.segment_completed("r", known, {successor: [known, seg(1, 1)]})
    assert successor in state.future, "segment 0 (epoch 0) could still lead to segment 1 of epoch 1"
    state = state.segment_completed("r", old, {})
    assert successor in state.unassigned


def test_ending_cut_stops_successors() -> None:
    a, nxt = seg(0), seg(1, 1)
    state = ReaderGroupState.initial({a: 0}, end_offsets={a: 10}).add_reader("r")
    state, _ = state.acquire("r")
    state = state.segment_completed("r", a, {nxt: [a]})
    assert state.is_finished


def test_reader_offline_returns_segments_at_its_last_position() -> None:
    state = ReaderGroupState.initial({seg(0): 0}).add_reader("a")
    state, _ = state.acquire("a")
    state = state.update_positions("a", {seg(0): 40}).remove_reader("a", {seg(0): 64})
    assert state.unassigned == {seg(0): 64} and not state.readers
    with pytest.raises(ReaderGroupStateError):
        state.update_positions("a", {seg(0): 80})


def test_checkpoint_collects_positions_and_blocks_rebalancing() -> None:
    state = ReaderGroupState.initial({seg(i): 0 for i in range(3)}).add_reader("a").add_reader("b")
    state = rebalance(state)
    state = state.create_checkpoint("cp1")
    assert state.segments_to_acquire("a") == 0 and state.checkpoint_for("a") == "cp1"
    with pytest.raises(ReaderGroupStateError):
        state.create_checkpoint("cp1")
    positions_a = {s: 10 for s in state.segments_of("a")}
    state = state.checkpoint_reached("a", "cp1", positions_a)
    assert state.checkpoint("cp1") is None
    state = state.remove_reader("b", {s: 20 for s in state.segments_of("b")})
    done = state.checkpoint("cp1")
    assert done is not None and set(done.positions.values()) == {10, 20} and len(done.positions) == 3


def test_checkpoint_includes_successors_of_segments_finished_before_it() -> None:
    a, b = seg(0), seg(1, 1)
    state = ReaderGroupState.initial({a: 0}).add_reader("r")
    state, _ = state.acquire("r")
    state = state.create_checkpoint("cp").segment_completed("r", a, {b: [a]})
    state = state.checkpoint_reached("r", "cp", {})
    done = state.checkpoint("cp")
    assert done is not None and dict(done.positions) == {b: 0} and a in done.completed


def test_round_trip_through_plain_values() -> None:
    state = ReaderGroupState.initial({seg(0): 5, seg(1): 0}, end_offsets={seg(1): 9}).add_reader("a")
    state, _ = state.acquire("a", 1)
    state = state.create_checkpoint("c").segment_completed("a", seg(0), {seg(2, 1): [seg(0), seg(1)]})
    assert ReaderGroupState.from_dict(state.to_dict()) == state


# --- properties ---------------------------------------------------------------------------------

Op = tuple[str, int, int]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[Op]]:
    width = draw(st.integers(1, 5))
    ops = draw(st.lists(st.tuples(st.sampled_from(["add", "remove", "acquire", "release", "complete", "rebalance"]),
                                  st.integers(0, 3), st.integers(0, 50)), max_size=40))
    return width, ops


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_invariants_hold_for_any_sequence(scenario: tuple[int, list[Op]]) -> None:
    """A stream scales as segments finish: each completed segment splits into two successors of the next epoch
    or merges with its neighbour; no segment is ever placed twice and no successor before its predecessors."""
    width, ops = scenario
    state = ReaderGroupState.initial({seg(i): 0 for i in range(width)})
    next_number = width
    predecessors: dict[ScopedSegment, frozenset[ScopedSegment]] = {}
    finished: set[ScopedSegment] = set()
    successors_of: dict[ScopedSegment, dict[ScopedSegment, list[ScopedSegment]]] = {}
    for kind, who, value in ops:
        reader = f"r{who}"
        if kind == "add":
            state = state.add_reader(reader)
        elif kind == "remove":
            state = state.remove_reader(reader)
        elif kind == "acquire":
            state, _ = state.acquire(reader)
        elif kind == "release" and state.segments_of(reader):
            victim = sorted(state.segments_of(reader), key=lambda s: s.segment_id)[0]
            state = state.release(reader, victim, value)
        elif kind == "complete" and state.segments_of(reader):
            done = sorted(state.segments_of(reader), key=lambda s: s.segment_id)[value % len(state.segments_of(reader))]
            if done not in successors_of:
                epoch = (done.segment_id >> 32) + 1
                if value % 3 == 0:
                    succ = {seg(next_number, epoch): [done], seg(next_number + 1, epoch): [done]}
                    next_number += 2
                else:
                    # merge with a sibling that may still be unread
                    partner = seg(value % max(1, next_number), done.segment_id >> 32)
                    group = sorted({done, partner}, key=lambda s: s.segment_id)
                    succ = {seg(next_number, epoch): group}
                    next_number += 1
                    for p in group:
                        successors_of.setdefault(p, succ)
                successors_of[done] = succ
            for s, before in successors_of[done].items():
                predecessors[s] = frozenset(before)
            state = state.segment_completed(reader, done, successors_of[done])
            finished.add(done)
        elif kind == "rebalance":
            state = rebalance(state)
        placed_list = placements(state)
        assert len(placed_list) == len(set(placed_list)), "a segment is placed twice"
        readable = set(state.unassigned) | {s for r in state.readers for s in state.segments_of(r)}
        for s in readable:
            preds = predecessors.get(s, frozenset())
            live = set(placed_list)
            assert not (preds & live), f"{s} is readable before its predecessors {preds & live}"
    if state.readers:
        state = rebalance(state)
        counts = [len(state.segments_of(r)) for r in state.readers]
        assert max(counts) - min(counts) <= 1
        assert not state.unassigned
