"""The reader-group reducer: assignment, successors after predecessors, balance, checkpoints (hypothesis)."""

from __future__ import annotations

from collections.abc import Mapping

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
KINDS = ["add", "remove", "acquire", "release", "complete", "rebalance", "checkpoint", "reach", "split", "merge"]


class History:
    """A stream's scaling history as the controller would report it: ranges, successors, predecessors."""

    def __init__(self, width: int) -> None:
        self.ranges = {seg(i): (i / width, (i + 1) / width) for i in range(width)}
        self.current = sorted(self.ranges, key=lambda s: self.ranges[s])
        self.epoch = 0
        self.number = width
        self.successors: dict[ScopedSegment, dict[ScopedSegment, list[ScopedSegment]]] = {}
        self.predecessors: dict[ScopedSegment, frozenset[ScopedSegment]] = {}

    def scale(self, sealed: list[ScopedSegment], new_ranges: list[tuple[float, float]]) -> None:
        self.epoch += 1
        created = []
        for rng in new_ranges:
            s = seg(self.number, self.epoch)
            self.number += 1
            self.ranges[s] = rng
            created.append(s)
            self.predecessors[s] = frozenset(
                p for p in sealed if self.ranges[p][0] < rng[1] and self.ranges[p][1] > rng[0]
            )
        for p in sealed:
            self.successors[p] = {s: sorted(self.predecessors[s], key=lambda x: x.segment_id)
                                  for s in created if p in self.predecessors[s]}
        self.current = sorted([s for s in self.current if s not in sealed] + created, key=lambda s: self.ranges[s])

    def split(self, index: int) -> None:
        old = self.current[index % len(self.current)]
        lo, hi = self.ranges[old]
        self.scale([old], [(lo, (lo + hi) / 2), ((lo + hi) / 2, hi)])

    def merge(self, index: int) -> None:
        if len(self.current) < 2:
            return
        i = index % (len(self.current) - 1)
        a, b = self.current[i], self.current[i + 1]
        self.scale([a, b], [(self.ranges[a][0], self.ranges[b][1])])


def ancestors(segment: ScopedSegment,
              predecessors: Mapping[ScopedSegment, frozenset[ScopedSegment]]) -> set[ScopedSegment]:
    found: set[ScopedSegment] = set()
    todo = list(predecessors.get(segment, ()))
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo += predecessors.get(p, ())
    return found


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[Op]]:
    width = draw(st.integers(1, 4))
    readers = draw(st.integers(1, 3))
    ops = draw(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, readers), st.integers(0, 50)), max_size=60))
    return width, ops


def check(state: ReaderGroupState, history: History) -> None:
    placed_list = placements(state)
    assert len(placed_list) == len(set(placed_list)), "a segment is placed twice"
    live = set(placed_list)
    readable = set(state.unassigned) | {s for r in state.readers for s in state.segments_of(r)}
    for s in readable:
        early = ancestors(s, history.predecessors) & live
        assert not early, f"{s} is readable before its predecessors {early}"
    for done in state.checkpoints:
        for s in done.positions:
            both = ancestors(s, history.predecessors) & set(done.positions)
            assert not both, f"checkpoint {done.name} holds {s} and its predecessors {both}"


def finish_checkpoints(state: ReaderGroupState) -> ReaderGroupState:
    for reader in sorted(state.readers):
        while (name := state.checkpoint_for(reader)) is not None:
            state = state.checkpoint_reached(reader, name, state.segments_of(reader))
    return state


def read_to_end(state: ReaderGroupState, history: History) -> ReaderGroupState:
    """One reader finishes every sealed segment it can get; returns the final state."""
    state = finish_checkpoints(state.add_reader("drain"))
    for other in sorted(state.readers - {"drain"}):
        state = state.remove_reader(other)
    for _ in range(1000):
        state, _ = state.acquire("drain", 1000)
        sealed = [s for s in state.segments_of("drain") if s in history.successors]
        if not sealed:
            break
        done = min(sealed, key=lambda s: s.segment_id)
        state = state.segment_completed("drain", done, history.successors[done])
        check(state, history)
    return state


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_invariants_hold_for_any_sequence(scenario: tuple[int, list[Op]]) -> None:
    """Readers join, leave, acquire, release, finish sealed segments and checkpoint while the stream splits and
    merges: no segment is placed twice, no successor is readable before its predecessors, checkpoints are
    consistent cuts, a group reset to a checkpoint reads every later segment, and rebalancing evens the load."""
    width, ops = scenario
    history = History(width)
    state = ReaderGroupState.initial({s: 0 for s in history.current})
    for kind, who, value in ops:
        reader = f"r{who}"
        held = sorted(state.segments_of(reader), key=lambda s: s.segment_id)
        if kind == "add":
            state = state.add_reader(reader)
        elif kind == "remove":
            state = state.remove_reader(reader)
        elif kind == "acquire":
            state, _ = state.acquire(reader)
        elif kind == "release" and held and not state.checkpoint_in_progress:
            state = state.release(reader, held[0], value)
        elif kind == "complete" and (ended := [s for s in held if s in history.successors]):
            done = ended[value % len(ended)]
            state = state.segment_completed(reader, done, history.successors[done])
        elif kind == "rebalance":
            state = rebalance(state)
        elif kind == "checkpoint" and not state.checkpoint_in_progress:
            state = state.create_checkpoint(f"cp{value}-{len(state.checkpoints)}")
        elif kind == "reach" and (name := state.checkpoint_for(reader)) is not None:
            state = state.checkpoint_reached(reader, name, state.segments_of(reader))
        elif kind == "split":
            history.split(value)
        elif kind == "merge":
            history.merge(value)
        check(state, history)
    state = finish_checkpoints(state)
    assert not state.checkpoint_in_progress
    sealed = set(history.successors)
    for checkpoint in state.checkpoints:
        start = ReaderGroupState.initial(checkpoint.positions, completed=checkpoint.completed)
        restored = read_to_end(start, history)
        assert sealed <= restored.completed, f"reset to {checkpoint.name} misses {sealed - restored.completed}"
        assert set(history.current) <= set(restored.segments_of("drain"))
    from_cut = read_to_end(ReaderGroupState.initial(state.cut_positions()), history)
    assert sealed - state.completed <= from_cut.completed, "a reset to the group's stream cut misses segments"
    if state.readers:
        state = rebalance(state)
        counts = [len(state.segments_of(r)) for r in state.readers]
        assert max(counts) - min(counts) <= 1
        assert not state.unassigned
    final = read_to_end(state, history)
    assert sealed <= final.completed, f"the group never reads {sealed - final.completed}"
    assert set(history.current) == set(final.segments_of("drain"))


def test_checkpoint_never_holds_a_successor_and_its_predecessor() -> None:
    a, b, merged = seg(0), seg(1), seg(2, 1)
    state = ReaderGroupState.initial({a: 0, b: 0}).add_reader("r1").add_reader("r2")
    state, _ = state.acquire("r1", 1)
    state, _ = state.acquire("r2", 1)
    holder_of_b = "r2" if b in state.segments_of("r2") else "r1"
    holder_of_a = "r1" if holder_of_b == "r2" else "r2"
    state = state.create_checkpoint("cp")
    state = state.checkpoint_reached(holder_of_b, "cp", {b: 7})
    state = state.segment_completed(holder_of_b, b, {merged: [a, b]})
    state = state.segment_completed(holder_of_a, a, {merged: [a, b]})
    state = state.checkpoint_reached(holder_of_a, "cp", {})
    done = state.checkpoint("cp")
    assert done is not None and dict(done.positions) == {b: 7}
    restored = ReaderGroupState.initial(done.positions, completed=done.completed).add_reader("x")
    restored, _ = restored.acquire("x")
    restored = restored.segment_completed("x", b, {merged: [a, b]})
    assert dict(restored.unassigned) == {merged: 0}


def test_reset_to_a_cut_with_future_segments_does_not_wait_for_unknown_predecessors() -> None:
    old, a, b, merged = seg(0), seg(1, 1), seg(2, 1), seg(3, 2)
    state = ReaderGroupState.initial({old: 0, a: 0, b: 0}).add_reader("r")
    state, _ = state.acquire("r")
    state = state.segment_completed("r", a, {merged: [a, b]})
    cut = state.cut_positions()
    assert cut[merged] == -1 and a not in cut
    restored = ReaderGroupState.initial(cut).add_reader("x")
    restored, _ = restored.acquire("x")
    restored = restored.segment_completed("x", b, {merged: [a, b]})
    assert merged in restored.unassigned, "segment 0 of epoch 0 is live, but the cut says 'merged' follows directly"


def test_a_reader_that_stops_syncing_expires_after_the_lease() -> None:
    state = ReaderGroupState.initial({seg(0): 0, seg(1): 0}).add_reader("a").add_reader("b")
    state, _ = state.acquire("a", 1)
    state, _ = state.acquire("b", 1)
    state = state.update_positions("a", {}, now_ms=1_000).update_positions("b", {}, now_ms=5_000)
    assert state.expired_readers(11_000, 10_000) == []
    assert state.expired_readers(11_001, 10_000) == ["a"]
    again = ReaderGroupState.from_dict(state.to_dict())
    assert again.heartbeats == {"a": 1_000, "b": 5_000}
    gone = again.remove_reader("a")
    assert "a" not in gone.heartbeats and gone.expired_readers(11_001, 10_000) == []
    assert set(gone.unassigned) == set(state.segments_of("a"))
