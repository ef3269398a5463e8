"""The reader-group state as a pure reducer: which reader reads which segment, and from where.

Every change is a method that returns a new frozen ``ReaderGroupState``; nothing here does I/O. The
reader group stores the state through a state synchronizer (conditional updates), so concurrent readers
apply these reducers to the latest state and retry on conflict.

Invariants (property-tested):
- a segment is in exactly one place: assigned to one reader, unassigned, or future (waiting);
- a future (successor) segment becomes assignable only when every predecessor is finished; a predecessor
  counts as finished when it is in ``completed``, or when it is unknown to this state (e.g. before the start
  cut or after a reset) and either the successor is a future segment (offset -1) of the starting cut or no live
  segment of an older epoch could still lead to it;
- successors of a segment that ends at the group's ending stream cut are never added;
- while a checkpoint is pending, no segment is acquired or released, so the checkpoint's positions are a
  consistent cut: each reader's positions when it reached the checkpoint, the unassigned segments at creation,
  plus successors made assignable by segments the reader finished before reaching the checkpoint (unless a
  predecessor is in the cut at an offset); a checkpoint never holds a segment and one of its successors. It also
  records the segments finished before it, so a group reset to it knows which predecessors are done.
- ``future`` keeps each successor's full predecessor set; whether it is ready is computed, never stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from anabranch.client.errors import ClientError
from anabranch.model.names import ScopedSegment, segment_epoch

MAX_COMPLETED_CHECKPOINTS = 10

Positions = Mapping[ScopedSegment, int]


class ReaderGroupStateError(ClientError):
    """A reader-group state change does not apply: the reader is offline or does not hold the segment."""


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Checkpoint:
    """A completed checkpoint: the position of every segment the group was reading."""

    name: str
    positions: Positions
    completed: frozenset[ScopedSegment] = frozenset()


@dataclass(frozen=True)
class PendingCheckpoint:
    name: str
    waiting: frozenset[str]
    positions: Positions
    completed: frozenset[ScopedSegment]


@dataclass(frozen=True)
class ReaderGroupState:
    assigned: Mapping[str, Positions] = field(default_factory=dict)
    unassigned: Positions = field(default_factory=dict)
    future: Mapping[ScopedSegment, frozenset[ScopedSegment]] = field(default_factory=dict)
    completed: frozenset[ScopedSegment] = frozenset()
    end_offsets: Positions = field(default_factory=dict)
    pending_checkpoints: tuple[PendingCheckpoint, ...] = ()
    checkpoints: tuple[Checkpoint, ...] = ()
    distance_to_tail: Mapping[str, int] = field(default_factory=dict)
    cut_futures: frozenset[ScopedSegment] = frozenset()
    heartbeats: Mapping[str, int] = field(default_factory=dict)
    """Each reader's last sync (wall-clock ms of its client's clock), for groups with a reader lease."""

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def initial(
        cls, positions: Positions, end_offsets: Positions | None = None, completed: Iterable[ScopedSegment] = ()
    ) -> ReaderGroupState:
        """A group that starts reading ``positions`` (segment → offset); ``end_offsets`` bound the segments.

        Segments at a negative offset are the cut's future segments: they follow the cut's segments directly, so
        any of their predecessors that is not in the cut is already finished.
        """
        return cls(
            unassigned=_frozen({s: o for s, o in positions.items() if o >= 0}),
            end_offsets=_frozen(end_offsets or {}),
            completed=frozenset(completed),
            cut_futures=frozenset(s for s, o in positions.items() if o < 0),
        )

    # --- queries ------------------------------------------------------------------------------

    @property
    def readers(self) -> frozenset[str]:
        return frozenset(self.assigned)

    def segments_of(self, reader: str) -> Positions:
        return self.assigned.get(reader, MappingProxyType({}))

    def owner_of(self, segment: ScopedSegment) -> str | None:
        for reader, segments in self.assigned.items():
            if segment in segments:
                return reader
        return None

    def live_segments(self) -> set[ScopedSegment]:
        live = set(self.unassigned) | set(self.future)
        for segments in self.assigned.values():
            live |= set(segments)
        return live

    def positions(self) -> dict[ScopedSegment, int]:
        """Every segment being read or waiting to be read (not future ones), with its offset."""
        result = dict(self.unassigned)
        for segments in self.assigned.values():
            result.update(segments)
        return result

    def cut_positions(self) -> dict[ScopedSegment, int]:
        """``positions()`` plus the future segments at offset -1: a well-formed stream cut of the group."""
        return {**dict.fromkeys(self.future, -1), **self.positions()}

    @property
    def is_finished(self) -> bool:
        """Nothing is left to read: every segment reached its end (or the ending stream cut)."""
        return not self.unassigned and not self.future and not any(self.assigned.values())

    @property
    def checkpoint_in_progress(self) -> bool:
        return bool(self.pending_checkpoints)

    def checkpoint_for(self, reader: str) -> str | None:
        """The oldest pending checkpoint ``reader`` has not yet reached."""
        for pending in self.pending_checkpoints:
            if reader in pending.waiting:
                return pending.name
        return None

    def checkpoint(self, name: str) -> Checkpoint | None:
        for done in self.checkpoints:
            if done.name == name:
                return done
        return None

    def segment_count(self) -> int:
        return len(self.unassigned) + sum(len(s) for s in self.assigned.values())

    def _shares(self) -> tuple[int, int, list[int]]:
        """``(q, r, held)``: balanced means ``r`` readers hold ``q + 1`` segments and the rest hold ``q``."""
        q, r = divmod(self.segment_count(), len(self.assigned))
        return q, r, [len(s) for s in self.assigned.values()]

    def segments_to_acquire(self, reader: str) -> int:
        if self.checkpoint_in_progress or reader not in self.assigned or not self.unassigned:
            return 0
        q, r, held_all = self._shares()
        held = len(self.assigned[reader])
        if held < q:
            return min(len(self.unassigned), q - held)
        if held == q and min(held_all) >= q and sum(1 for h in held_all if h > q) < r:
            return 1
        return 0

    def segments_to_release(self, reader: str) -> int:
        """How many segments ``reader`` should give back so that every reader holds ``q`` or ``q + 1``."""
        if self.checkpoint_in_progress or reader not in self.assigned:
            return 0
        q, r, held_all = self._shares()
        held = len(self.assigned[reader])
        if held > q + 1:
            return held - q - 1
        if held == q + 1 and sum(1 for h in held_all if h > q) > r:
            return 1
        return 0

    # --- readers ------------------------------------------------------------------------------

    def add_reader(self, reader: str) -> ReaderGroupState:
        if reader in self.assigned:
            return self
        return replace(self, assigned=_frozen({**self.assigned, reader: _frozen({})}))

    def remove_reader(self, reader: str, last_positions: Positions | None = None) -> ReaderGroupState:
        """``reader`` goes offline: its segments return to the pool at ``last_positions`` (or the stored ones)."""
        if reader not in self.assigned:
            return self
        held = dict(self.assigned[reader])
        if last_positions:
            held.update({s: o for s, o in last_positions.items() if s in held})
        assigned = {r: s for r, s in self.assigned.items() if r != reader}
        pending = tuple(
            replace(p, waiting=p.waiting - {reader}, positions=_frozen({**p.positions, **held}))
            if reader in p.waiting
            else p
            for p in self.pending_checkpoints
        )
        distance = {r: d for r, d in self.distance_to_tail.items() if r != reader}
        state = replace(
            self,
            assigned=_frozen(assigned),
            unassigned=_frozen({**self.unassigned, **held}),
            pending_checkpoints=pending,
            distance_to_tail=_frozen(distance),
            heartbeats=_frozen({r: t for r, t in self.heartbeats.items() if r != reader}),
        )
        return state._settle_checkpoints()

    # --- segments -----------------------------------------------------------------------------

    def acquire(self, reader: str, count: int | None = None) -> tuple[ReaderGroupState, dict[ScopedSegment, int]]:
        """Move up to ``count`` (default: the fair share) unassigned segments to ``reader``."""
        wanted = self.segments_to_acquire(reader) if count is None else count
        if wanted <= 0 or self.checkpoint_in_progress or reader not in self.assigned:
            return self, {}
        taken = dict(sorted(self.unassigned.items(), key=lambda item: _order(item[0]))[:wanted])
        unassigned = {s: o for s, o in self.unassigned.items() if s not in taken}
        assigned = {**self.assigned, reader: _frozen({**self.assigned[reader], **taken})}
        return replace(self, assigned=_frozen(assigned), unassigned=_frozen(unassigned)), taken

    def release(self, reader: str, segment: ScopedSegment, offset: int) -> ReaderGroupState:
        held = self.segments_of(reader)
        if segment not in held:
            raise ReaderGroupStateError(
                f"reader {reader!r} cannot release {segment.qualified_name}: it does not hold it"
            )
        if self.checkpoint_in_progress:
            raise ReaderGroupStateError("segments cannot be released while a checkpoint is in progress")
        remaining = {s: o for s, o in held.items() if s != segment}
        return replace(
            self,
            assigned=_frozen({**self.assigned, reader: _frozen(remaining)}),
            unassigned=_frozen({**self.unassigned, segment: offset}),
        )

    def expired_readers(self, now_ms: int, lease_ms: int) -> list[str]:
        """Readers whose last sync is more than ``lease_ms`` before ``now_ms`` (readers that never synced with a
        heartbeat do not expire)."""
        return sorted(r for r, t in self.heartbeats.items() if r in self.assigned and now_ms - t > lease_ms)

    def update_positions(
        self, reader: str, positions: Positions, distance_to_tail: int | None = None, now_ms: int | None = None
    ) -> ReaderGroupState:
        held = self.segments_of(reader)
        if reader not in self.assigned:
            raise ReaderGroupStateError(f"reader {reader!r} is not in the reader group (it went offline)")
        updated = {s: positions.get(s, o) for s, o in held.items()}
        distance = dict(self.distance_to_tail)
        if distance_to_tail is not None:
            distance[reader] = distance_to_tail
        heartbeats = self.heartbeats if now_ms is None else _frozen({**self.heartbeats, reader: now_ms})
        return replace(
            self,
            assigned=_frozen({**self.assigned, reader: _frozen(updated)}),
            distance_to_tail=_frozen(distance),
            heartbeats=heartbeats,
        )

    def segment_completed(
        self, reader: str, segment: ScopedSegment, successors: Mapping[ScopedSegment, Iterable[ScopedSegment]]
    ) -> ReaderGroupState:
        """``reader`` read ``segment`` to its end; ``successors`` maps each successor to all its predecessors."""
        held = self.segments_of(reader)
        if segment not in held:
            raise ReaderGroupStateError(
                f"reader {reader!r} cannot complete {segment.qualified_name}: it does not hold it"
            )
        remaining = {s: o for s, o in held.items() if s != segment}
        completed = self.completed | {segment}
        future = dict(self.future)
        if segment not in self.end_offsets:
            live = self.live_segments()
            for successor, predecessors in successors.items():
                preds = frozenset(predecessors) | {segment}
                if successor in live or successor in self.completed:
                    continue
                if any(p in self.end_offsets for p in preds):
                    continue
                future[successor] = preds
        state = replace(
            self,
            assigned=_frozen({**self.assigned, reader: _frozen(remaining)}),
            completed=completed,
            future=_frozen(future),
        )
        waiting_for = state.future
        state, ready = state._promote_futures()
        pending = []
        for p in state.pending_checkpoints:
            if reader in p.waiting:
                # successors of segments finished before this reader reached the checkpoint belong to it, unless a
                # predecessor was reported at an offset (then the successor comes after that predecessor again)
                starts = {s: 0 for s in ready if not waiting_for[s] & set(p.positions)}
                p = replace(p, positions=_frozen({**p.positions, **starts}), completed=p.completed | {segment})
            pending.append(p)
        return replace(state, pending_checkpoints=tuple(pending))

    def _promote_futures(self) -> tuple[ReaderGroupState, list[ScopedSegment]]:
        live_now = self.live_segments()
        reading = set(self.unassigned)
        for segments in self.assigned.values():
            reading |= set(segments)

        def finished(pred: ScopedSegment, successor: ScopedSegment) -> bool:
            if pred in self.completed:
                return True
            if pred in live_now:
                return False
            if successor in self.cut_futures:
                return True
            epoch = segment_epoch(pred.segment_id)
            return not any(
                (s.scope, s.stream) == (pred.scope, pred.stream) and segment_epoch(s.segment_id) < epoch
                for s in reading | set(self.future)
            )

        future: dict[ScopedSegment, frozenset[ScopedSegment]] = {}
        ready: list[ScopedSegment] = []
        for successor, preds in self.future.items():
            if any(not finished(p, successor) for p in preds):
                future[successor] = preds
            else:
                ready.append(successor)
        if not ready:
            return replace(self, future=_frozen(future)), []
        unassigned = {**self.unassigned, **dict.fromkeys(ready, 0)}
        state = replace(self, future=_frozen(future), unassigned=_frozen(unassigned))
        more_state, more = state._promote_futures()
        return more_state, ready + more

    # --- checkpoints --------------------------------------------------------------------------

    def create_checkpoint(self, name: str) -> ReaderGroupState:
        if any(p.name == name for p in self.pending_checkpoints) or self.checkpoint(name) is not None:
            raise ReaderGroupStateError(f"a checkpoint named {name!r} already exists; choose another name")
        pending = PendingCheckpoint(name, frozenset(self.assigned), _frozen(self.unassigned), self.completed)
        return replace(self, pending_checkpoints=(*self.pending_checkpoints, pending))._settle_checkpoints()

    def checkpoint_reached(self, reader: str, name: str, positions: Positions) -> ReaderGroupState:
        """``reader`` read up to checkpoint ``name``; ``positions`` are its offsets at that point."""
        pending = []
        for p in self.pending_checkpoints:
            if p.name == name and reader in p.waiting:
                held = {s: positions.get(s, o) for s, o in self.segments_of(reader).items()}
                p = replace(p, waiting=p.waiting - {reader}, positions=_frozen({**p.positions, **held}))
            pending.append(p)
        return replace(self, pending_checkpoints=tuple(pending))._settle_checkpoints()

    def _settle_checkpoints(self) -> ReaderGroupState:
        done = [Checkpoint(p.name, p.positions, p.completed) for p in self.pending_checkpoints if not p.waiting]
        if not done:
            return self
        still = tuple(p for p in self.pending_checkpoints if p.waiting)
        history = (*self.checkpoints, *done)[-MAX_COMPLETED_CHECKPOINTS:]
        return replace(self, pending_checkpoints=still, checkpoints=history)

    # --- serialization (CBOR-friendly plain values) -------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "assigned": {r: _positions_out(s) for r, s in self.assigned.items()},
            "unassigned": _positions_out(self.unassigned),
            "future": {s.qualified_name: sorted(p.qualified_name for p in preds) for s, preds in self.future.items()},
            "completed": sorted(s.qualified_name for s in self.completed),
            "end_offsets": _positions_out(self.end_offsets),
            "pending": [
                {"name": p.name, "waiting": sorted(p.waiting), "positions": _positions_out(p.positions),
                 "completed": sorted(s.qualified_name for s in p.completed)}
                for p in self.pending_checkpoints
            ],
            "checkpoints": [
                {"name": c.name, "positions": _positions_out(c.positions),
                 "completed": sorted(s.qualified_name for s in c.completed)}
                for c in self.checkpoints
            ],
            "distance": dict(self.distance_to_tail),
            "cut_futures": sorted(s.qualified_name for s in self.cut_futures),
            "heartbeats": dict(self.heartbeats),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReaderGroupState:
        def segs(names: Iterable[str]) -> frozenset[ScopedSegment]:
            return frozenset(ScopedSegment.parse(n) for n in names)

        return cls(
            assigned=_frozen({r: _positions_in(s) for r, s in data["assigned"].items()}),
            unassigned=_positions_in(data["unassigned"]),
            future=_frozen({ScopedSegment.parse(s): segs(p) for s, p in data["future"].items()}),
            completed=segs(data["completed"]),
            end_offsets=_positions_in(data["end_offsets"]),
            pending_checkpoints=tuple(
                PendingCheckpoint(p["name"], frozenset(p["waiting"]), _positions_in(p["positions"]),
                                  segs(p["completed"]))
                for p in data["pending"]
            ),
            checkpoints=tuple(
                Checkpoint(c["name"], _positions_in(c["positions"]), segs(c["completed"])) for c in data["checkpoints"]
            ),
            distance_to_tail=_frozen(data["distance"]),
            cut_futures=segs(data.get("cut_futures", ())),
            heartbeats=_frozen(data.get("heartbeats", {})),
        )


def _order(segment: ScopedSegment) -> tuple[str, str, int]:
    return segment.scope, segment.stream, segment.segment_id


def _positions_out(positions: Positions) -> dict[str, int]:
    return {s.qualified_name: o for s, o in positions.items()}


def _positions_in(data: Mapping[str, int]) -> Positions:
    return _frozen({ScopedSegment.parse(n): int(o) for n, o in data.items()})
