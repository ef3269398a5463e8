"""Restrictions of ``ReadFromAnabranch``'s splittable DoFn and their trackers (sans-IO, everything pickles).

Bounded reads: a ``SegmentRange`` (bytes ``start``..``stop`` of one segment; ``start`` is an event boundary).
Its tracker is claimed one event at a time with ``EventClaim(offset, end, boundaries)`` — where the event starts
and ends, and the event boundaries known ahead (those of the block the event came from) — and splits only at
event boundaries: at the end of the last claimed event (``fraction_of_remainder`` 0, a checkpoint) or at the
first known boundary at or after the requested fraction (no known boundary there: no split).

Ordered and unbounded reads: a ``TailCut`` (one per stream): a stream cut — every segment being read with its
offset, and ``completed`` segments read to their sealed end that stay in the cut until every predecessor of their
successor is complete too (a successor is read only after all its predecessors) — plus ``ended`` (nothing more to
read: the primary of a checkpoint, or an end condition met), ``last_activity`` (wall-clock seconds of the last
event, for the idle end condition) and an optional ``stop`` cut (segments in it are read up to their offset there
and their successors are not followed). Its tracker is claimed with whole successive ``TailCut``s (one per block
of events or per segment completion); ``try_split(0)`` (``defer_remainder``) ends the primary at the claimed cut
and resumes the residual from there; it never splits otherwise (one reader per stream keeps per-key order across
scaling). ``advance_cut`` is the scaling rule: the cut after a segment completes, given its successors.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker

from anabranch.model.stream_cut import StreamCut


@dataclass(frozen=True, slots=True)
class SegmentRange:
    """Bytes ``start``..``stop`` of segment ``segment_id`` of ``scope/stream``."""

    scope: str
    stream: str
    segment_id: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return max(0, self.stop - self.start)


@dataclass(frozen=True, slots=True)
class EventClaim:
    """An event at ``offset``..``end``; ``boundaries``: event boundaries known after it (ascending), if any."""

    offset: int
    end: int
    boundaries: Sequence[int] = ()


class SegmentRangeTracker(RestrictionTracker):  # type: ignore[misc]
    """Claims the events of a ``SegmentRange`` in order; splits at event boundaries only."""

    def __init__(self, restriction: SegmentRange) -> None:
        self._range = restriction
        self._next = restriction.start
        """The end of the last claimed event (an event boundary)."""
        self._boundaries: Sequence[int] = ()
        self._exhausted = False

    def current_restriction(self) -> SegmentRange:
        return self._range

    def current_progress(self) -> RestrictionProgress:
        done = self._next - self._range.start
        return RestrictionProgress(completed=float(done), remaining=float(max(0, self._range.stop - self._next)))

    def try_claim(self, position: EventClaim) -> bool:
        if position.offset < self._next:
            raise ValueError(f"claimed an event at {position.offset} of segment {self._range.segment_id}, "
                             f"before the end of the last one claimed ({self._next})")
        if position.offset >= self._range.stop:
            self._exhausted = True
            return False
        self._next = position.end
        self._boundaries = position.boundaries
        return True

    def try_split(self, fraction_of_remainder: float) -> tuple[SegmentRange, SegmentRange] | None:
        if self._next >= self._range.stop or self._exhausted:
            return None
        split = self._next
        if fraction_of_remainder > 0:
            wanted = self._next + fraction_of_remainder * (self._range.stop - self._next)
            index = bisect.bisect_left(self._boundaries, wanted)
            if index >= len(self._boundaries) or self._boundaries[index] >= self._range.stop:
                return None
            split = self._boundaries[index]
        primary = dataclasses.replace(self._range, stop=split)
        residual = dataclasses.replace(self._range, start=split)
        self._range = primary
        return primary, residual

    def check_done(self) -> None:
        if not self._exhausted and self._next < self._range.stop:
            raise ValueError(f"segment {self._range.segment_id} of {self._range.scope}/{self._range.stream}: "
                             f"events {self._next}..{self._range.stop} were not read")

    def is_bounded(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class TailCut:
    """Where an unbounded read of ``scope/stream`` is: ``positions`` (segment id, offset), sorted by id."""

    scope: str
    stream: str
    positions: tuple[tuple[int, int], ...]
    completed: frozenset[int] = frozenset()
    ended: bool = False
    last_activity: float = 0.0
    stop: tuple[tuple[int, int], ...] | None = None
    """Read up to this stream cut only (segment id, offset), or without end when None."""

    @classmethod
    def of(cls, scope: str, stream: str, positions: Iterable[tuple[int, int]], completed: Iterable[int] = (),
           **kwargs: object) -> TailCut:
        return cls(scope, stream, tuple(sorted(dict(positions).items())), frozenset(completed), **kwargs)  # type: ignore[arg-type]

    @property
    def active(self) -> dict[int, int]:
        """The segments still to read (not completed), with their offsets."""
        return {seg: offset for seg, offset in self.positions if seg not in self.completed}

    @property
    def finished(self) -> bool:
        """Nothing more to read: ended, or every segment is completed (the stream is sealed and read)."""
        return self.ended or all(seg in self.completed for seg, _ in self.positions)

    def stop_offset(self, segment_id: int) -> int | None:
        """Where the read of ``segment_id`` ends before the segment does (it is in the stop cut), else None."""
        if self.stop is None:
            return None
        offset = dict(self.stop).get(segment_id)
        return offset if offset is not None and offset >= 0 else None

    def stream_cut(self) -> StreamCut:
        return StreamCut(self.scope, self.stream, dict(self.positions))

    def with_offsets(self, offsets: dict[int, int], at: float | None = None) -> TailCut:
        positions = dict(self.positions)
        positions.update(offsets)
        return dataclasses.replace(self, positions=tuple(sorted(positions.items())),
                                   last_activity=self.last_activity if at is None else at)


def advance_cut(cut: TailCut, segment_id: int, end_offset: int,
                successors: Sequence[tuple[int, Sequence[int]]]) -> TailCut:
    """The cut after ``segment_id`` is read to its sealed end ``end_offset``, given its successors as
    (segment id, predecessor ids). A successor joins (at offset 0) once every predecessor it has in the cut is
    completed; a completed segment leaves the cut once all its successors joined (none: it stays, completed —
    the stream is sealed there)."""
    positions = dict(cut.positions)
    positions[segment_id] = end_offset
    completed = set(cut.completed) | {segment_id}
    joined: list[int] = []
    for successor, predecessors in successors:
        if successor in positions:
            continue
        if all(p in completed or p not in positions for p in predecessors):
            joined.append(successor)
            for p in predecessors:
                positions.pop(p, None)
                completed.discard(p)
    for successor in joined:
        positions[successor] = 0
    return dataclasses.replace(cut, positions=tuple(sorted(positions.items())), completed=frozenset(completed))


class TailCutTracker(RestrictionTracker):  # type: ignore[misc]
    """Claims successive cuts of an unbounded read; splits only to checkpoint (``defer_remainder``)."""

    def __init__(self, restriction: TailCut) -> None:
        self._start = restriction
        self._current = restriction
        self._stopped = False

    def current_restriction(self) -> TailCut:
        return self._start if not self._stopped else self._current

    def current_progress(self) -> RestrictionProgress:
        return RestrictionProgress(completed=0.0, remaining=0.0 if self._current.finished else 1.0)

    def try_claim(self, position: TailCut) -> bool:
        if self._stopped or self._current.finished:
            return False
        self._current = position
        return True

    def try_split(self, fraction_of_remainder: float) -> tuple[TailCut, TailCut] | None:
        if fraction_of_remainder > 0 or self._stopped or self._current.finished:
            return None
        self._stopped = True
        primary = dataclasses.replace(self._current, ended=True)
        residual = self._current
        self._current = primary
        return primary, residual

    def check_done(self) -> None:
        if not (self._stopped or self._current.finished):
            raise ValueError(f"the read of {self._current.scope}/{self._current.stream} stopped before its end "
                             "without a checkpoint")

    def is_bounded(self) -> bool:
        return self._stopped or self._current.finished
