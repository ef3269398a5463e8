"""Epochs, segment records and the key-space math of scaling: pure functions, no I/O.

Invariants: the segments of every epoch tile [0, 1) exactly (the last one ends at exactly 1.0);
segment numbers only grow, so a higher number means a later creation; a segment id is
``creation_epoch << 32 | number``. Each epoch records why it exists (``reason``). A segment
sealed by a scale is absent from the next epoch, and its successors are the segments of that
epoch that overlap it. Stream cuts map segment id → offset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from anabranch.model.keyspace import Range, merge_blocks
from anabranch.model.names import segment_id

REASON_CREATED = "created"
REASON_MANUAL = "manual scale"
REASON_AUTO = "auto-scale"
REASON_ROLLING = "rolling transaction"
REASON_UPDATE = "forced by update"


class ScaleInputInvalidError(ValueError):
    """The new key ranges do not cover exactly the ranges of the sealed segments (answered FAILURE)."""


class ScalePreconditionError(ValueError):
    """A sealed segment is not active, or the stream would drop below its minimum segment count."""


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    number: int
    creation_epoch: int
    creation_time: int
    key_start: float
    key_end: float

    @property
    def id(self) -> int:
        return segment_id(self.number, self.creation_epoch)

    @property
    def range(self) -> Range:
        return (self.key_start, self.key_end)

    def overlaps(self, other: SegmentRecord | Range) -> bool:
        start, end = other.range if isinstance(other, SegmentRecord) else other
        return self.key_start < end and self.key_end > start

    def encode(self) -> list[Any]:
        return [self.number, self.creation_epoch, self.creation_time, self.key_start, self.key_end]

    @classmethod
    def decode(cls, raw: Sequence[Any]) -> SegmentRecord:
        return cls(int(raw[0]), int(raw[1]), int(raw[2]), float(raw[3]), float(raw[4]))


@dataclass(frozen=True, slots=True)
class EpochRecord:
    epoch: int
    reference_epoch: int
    segments: tuple[SegmentRecord, ...]
    creation_time: int
    reason: str = ""
    """Why the epoch exists (``REASON_*``); "" for records written before reasons were kept."""

    def sorted_segments(self) -> list[SegmentRecord]:
        return sorted(self.segments, key=lambda s: s.key_start)

    def find(self, seg_id: int) -> SegmentRecord | None:
        for seg in self.segments:
            if seg.id == seg_id:
                return seg
        return None

    @property
    def max_number(self) -> int:
        return max(s.number for s in self.segments)

    def encode(self) -> dict[str, Any]:
        return {"e": self.epoch, "r": self.reference_epoch, "t": self.creation_time,
                "s": [s.encode() for s in self.segments], "why": self.reason}

    @classmethod
    def decode(cls, raw: Mapping[str, Any]) -> EpochRecord:
        return cls(int(raw["e"]), int(raw["r"]), tuple(SegmentRecord.decode(s) for s in raw["s"]), int(raw["t"]),
                   str(raw.get("why", "")))


def first_epoch(ranges: Sequence[Range], start_number: int, now: int) -> EpochRecord:
    segs = tuple(SegmentRecord(start_number + i, 0, now, lo, hi) for i, (lo, hi) in enumerate(ranges))
    return EpochRecord(0, 0, segs, now, REASON_CREATED)


def validate_scale(current: EpochRecord, sealed: Sequence[int], new_ranges: Sequence[Range],
                   min_segments: int) -> None:
    """Pravega's scale checks (spec §3.4 steps 3-5); raises on failure."""
    active = {s.id: s for s in current.segments}
    if not sealed or any(seg_id not in active for seg_id in sealed):
        raise ScalePreconditionError(f"segments {list(sealed)} are not all active in epoch {current.epoch}")
    if not new_ranges:
        raise ScaleInputInvalidError("no new key ranges")
    for start, end in new_ranges:
        if not (0.0 <= start < end <= 1.0):
            raise ScaleInputInvalidError(f"invalid key range [{start}, {end})")
    starts = [start for start, _ in new_ranges]
    if len(set(starts)) != len(starts):
        raise ScaleInputInvalidError("duplicate start keys in the new ranges")
    ordered = sorted(new_ranges)
    if any(ordered[i][1] > ordered[i + 1][0] for i in range(len(ordered) - 1)):
        raise ScaleInputInvalidError("new key ranges overlap")
    if merge_blocks([active[i].range for i in set(sealed)]) != merge_blocks(list(new_ranges)):
        raise ScaleInputInvalidError("new key ranges do not cover exactly the ranges of the sealed segments")
    if len(current.segments) - len(set(sealed)) + len(new_ranges) < min_segments:
        raise ScalePreconditionError(f"the stream would have fewer than {min_segments} segments")


def next_epoch(current: EpochRecord, sealed: Sequence[int], new_ranges: Sequence[Range], next_number: int,
               now: int, reason: str = REASON_MANUAL) -> EpochRecord:
    """The epoch after a scale: current minus sealed, plus the new segments numbered in request order."""
    epoch = current.epoch + 1
    when = max(now, current.creation_time + 1)
    kept = [s for s in current.segments if s.id not in set(sealed)]
    added = [SegmentRecord(next_number + i, epoch, when, lo, hi) for i, (lo, hi) in enumerate(new_ranges)]
    return EpochRecord(epoch, epoch, tuple(kept + added), when, reason)


def duplicate_epoch(source: EpochRecord, epoch: int, next_number: int, now: int) -> EpochRecord:
    """A rolling-transaction epoch: ``source``'s ranges as new segments, pointing back to it."""
    segs = tuple(SegmentRecord(next_number + i, epoch, now, s.key_start, s.key_end)
                 for i, s in enumerate(source.sorted_segments()))
    return EpochRecord(epoch, source.reference_epoch, segs, now, REASON_ROLLING)


def sealed_epoch(seg: SegmentRecord, epochs: Sequence[EpochRecord]) -> int | None:
    """The first epoch (after its creation) that no longer holds ``seg``; None while it is in the latest."""
    for record in epochs:
        if record.epoch > seg.creation_epoch and record.find(seg.id) is None:
            return record.epoch
    return None


def successors(seg_id: int, epochs: Sequence[EpochRecord]) -> list[tuple[SegmentRecord, list[int]]]:
    """Successors of a segment sealed by a scale, each with all its predecessors; [] if never scaled away.

    ``epochs`` must be every epoch from the segment's creation epoch to the latest, in order.
    """
    by_epoch = {e.epoch: e for e in epochs}
    creation = next((e.find(seg_id) for e in epochs if e.find(seg_id) is not None), None)
    if creation is None:
        return []
    sealed_in = sealed_epoch(creation, epochs)
    if sealed_in is None:
        return []
    after, before = by_epoch[sealed_in], by_epoch[sealed_in - 1]
    result = []
    for succ in after.sorted_segments():
        if succ.overlaps(creation) and before.find(succ.id) is None:
            preds = [p.id for p in before.segments if p.overlaps(succ) and after.find(p.id) is None]
            result.append((succ, preds))
    return result


def all_segments(epochs: Sequence[EpochRecord]) -> dict[int, SegmentRecord]:
    found: dict[int, SegmentRecord] = {}
    for record in epochs:
        for seg in record.segments:
            found.setdefault(seg.id, seg)
    return found


def is_cut_valid(cut: Mapping[int, int], segments: Mapping[int, SegmentRecord]) -> bool:
    """Spec §3.5: known segments; non-negative entries do not overlap; future (< 0) entries are later
    than the present entries they overlap; together the entries cover [0, 1)."""
    if not cut or any(seg_id not in segments for seg_id in cut):
        return False
    present = [segments[i] for i, offset in cut.items() if offset >= 0]
    future = [segments[i] for i, offset in cut.items() if offset < 0]
    for i, a in enumerate(present):
        if any(a.overlaps(b) for b in present[i + 1:]):
            return False
    for f in future:
        if any(f.overlaps(p) and f.number <= p.number for p in present):
            return False
    return merge_blocks([segments[i].range for i in cut]) == [(0.0, 1.0)]


def is_before(seg: SegmentRecord, cut_segments: Sequence[SegmentRecord]) -> bool:
    """True if every cut segment overlapping ``seg`` was created after it (``seg`` lies wholly before the cut)."""
    overlapping = [c for c in cut_segments if c.overlaps(seg)]
    return bool(overlapping) and all(c.number > seg.number for c in overlapping)


def is_after(seg: SegmentRecord, cut_segments: Sequence[SegmentRecord]) -> bool:
    overlapping = [c for c in cut_segments if c.overlaps(seg)]
    return bool(overlapping) and all(c.number < seg.number for c in overlapping)


def cut_not_behind(new: Mapping[int, int], old: Mapping[int, int], segments: Mapping[int, SegmentRecord]) -> bool:
    """True if ``new`` is at or after ``old`` on every part of the key space."""
    for old_id, old_offset in old.items():
        old_seg = segments[old_id]
        for new_id, new_offset in new.items():
            new_seg = segments[new_id]
            if not new_seg.overlaps(old_seg):
                continue
            if new_id == old_id:
                if new_offset < old_offset:
                    return False
            elif new_seg.number < old_seg.number:
                return False
    return True


def segments_between(start: Mapping[int, int], end: Mapping[int, int], first: EpochRecord, last: EpochRecord,
                     segments: Mapping[int, SegmentRecord]) -> list[SegmentRecord]:
    """Segments from cut ``start`` (empty: epoch ``first``) to cut ``end`` (empty: epoch ``last``)."""
    start_segs = [segments[i] for i in start] if start else list(first.segments)
    end_segs = [segments[i] for i in end] if end else list(last.segments)
    return sorted((s for s in segments.values() if not is_before(s, start_segs) and not is_after(s, end_segs)),
                  key=lambda s: (s.number, s.creation_epoch))
