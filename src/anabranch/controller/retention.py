"""Stream retention (spec §3.6): choose where to truncate, and the periodic job that records cuts and truncates.

Pure part: ``choose_truncation`` applies Pravega's semantics to a history of ``RecordedCut``s (a stream
cut with the wall time it was recorded and the stream's size at it):
- the *min cut* is the newest recorded cut that is old enough to go (TIME: recorded at least ``param`` ms
  ago; SIZE: at least ``param`` bytes were written after it): truncating there keeps at least the minimum;
- the *max cut* is the newest recorded cut beyond the maximum (``max`` ms / bytes); truncating there keeps at
  most the maximum (``max`` <= 0 or Long.MAX_VALUE means unbounded);
- without subscribers the stream is truncated at the min cut. With subscribers (consumption-based retention)
  it is truncated at the subscribers' lowest acknowledged cut, but never beyond the min cut and never short
  of the max cut. When the subscribers' cuts cannot be ordered, the newest recorded cut at or before the min
  cut that every subscriber has passed is used (else the max cut).
Nothing is truncated that is not strictly ahead of the previous truncation. ``bytes_between`` measures the
bytes written between two cuts, from which the job keeps the running size of each recorded cut.

I/O part: ``RetentionJob`` runs every ``period`` seconds on its clock. For each stream with a retention
policy it records the current tail (the active segments' lengths) under the key ``retention`` of the
stream's metadata table, chooses a cut and truncates through the controller's truncate workflow, then
forgets the recorded cuts it truncated past; at most ``MAX_RECORDED_CUTS`` are kept (``thin``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anabranch.admin.metrics import CONTROLLER as CONTROLLER_METRICS
from anabranch.clock import Clock, run_periodically
from anabranch.controller.epochs import SegmentRecord, all_segments, cut_not_behind, is_after, is_before
from anabranch.controller.errors import (
    InvalidTruncationError,
    NoSuchSegmentError,
    StreamNotFoundError,
    WriteConflictError,
)
from anabranch.controller.metadata import Table
from anabranch.controller.readergroups import SUBSCRIBER_PREFIX
from anabranch.controller.records import RetentionConfig, StreamState

if TYPE_CHECKING:
    from anabranch.controller.facade import Controller

log = logging.getLogger(__name__)

RETENTION_TIME = 1
RETENTION_SIZE = 2
UNBOUNDED = 2**63 - 1
RETENTION_KEY = "retention"
MAX_RECORDED_CUTS = 256

Cut = Mapping[int, int]
CutOrder = Callable[[Cut, Cut], bool]
"""``at_or_after(a, b)``: True if cut ``a`` is at or after cut ``b`` on every part of the key space."""


@dataclass(frozen=True, slots=True)
class RecordedCut:
    time_ms: int
    size: int
    """Bytes written to the stream before this cut, counted from the first recorded cut's reference."""
    cut: Cut

    def encode(self) -> list[Any]:
        return [self.time_ms, self.size, dict(self.cut)]

    @classmethod
    def decode(cls, raw: Sequence[Any]) -> RecordedCut:
        return cls(int(raw[0]), int(raw[1]), {int(k): int(v) for k, v in raw[2].items()})


def _newest_beyond(policy: RetentionConfig, history: Sequence[RecordedCut], now_ms: int, current_size: int,
                   bound: int) -> RecordedCut | None:
    found = None
    for recorded in history:
        if policy.retention_type == RETENTION_TIME:
            beyond = recorded.time_ms <= now_ms - bound
        else:
            beyond = recorded.size <= current_size - bound
        if beyond:
            found = recorded
    return found


def _lowest(cuts: Sequence[Cut], at_or_after: CutOrder) -> Cut | None:
    """The cut every other cut is at or after, if there is one."""
    for candidate in cuts:
        if all(at_or_after(other, candidate) for other in cuts):
            return candidate
    return None


def choose_truncation(policy: RetentionConfig | None, history: Sequence[RecordedCut], now_ms: int,
                      current_size: int, subscribers: Sequence[Cut], previous: Cut | None,
                      at_or_after: CutOrder) -> Cut | None:
    """The cut to truncate the stream at now, or None. ``history`` is oldest first."""
    if policy is None or policy.retention_type not in (RETENTION_TIME, RETENTION_SIZE):
        return None
    min_cut = _newest_beyond(policy, history, now_ms, current_size, max(policy.param, 0))
    if min_cut is None:
        return None
    max_cut = None
    if 0 < policy.max < UNBOUNDED:
        max_cut = _newest_beyond(policy, history, now_ms, current_size, max(policy.max, policy.param))
    chosen: Cut | None = min_cut.cut
    if subscribers:
        lowest = _lowest(subscribers, at_or_after)
        if lowest is not None and at_or_after(lowest, min_cut.cut):
            chosen = min_cut.cut
        elif lowest is not None and at_or_after(min_cut.cut, lowest):
            chosen = max_cut.cut if max_cut is not None and not at_or_after(lowest, max_cut.cut) else lowest
        else:
            passed = [r for r in history if r.time_ms <= min_cut.time_ms
                      and all(at_or_after(s, r.cut) for s in subscribers)]
            chosen = passed[-1].cut if passed else (None if max_cut is None else max_cut.cut)
    if chosen is None or (previous and at_or_after(previous, chosen)):
        return None
    return chosen


def prune(history: Sequence[RecordedCut], truncated: Cut, at_or_after: CutOrder) -> list[RecordedCut]:
    """The recorded cuts strictly ahead of a truncation."""
    return [r for r in history if dict(r.cut) != dict(truncated) and at_or_after(r.cut, truncated)]


def thin(history: Sequence[RecordedCut], limit: int = MAX_RECORDED_CUTS) -> list[RecordedCut]:
    """At most ``limit`` cuts: every other cut of the older half goes first. Dropping a cut only ever makes
    a later truncation land earlier (keeping more), so the minimum is never violated."""
    kept = list(history)
    while len(kept) > limit:
        half = len(kept) // 2
        kept = kept[:half:2] + kept[half:]
    return kept


def _position(seg: SegmentRecord, cut: Cut, cut_segments: Sequence[SegmentRecord],
              lengths: Mapping[int, int], *, start: bool) -> int | None:
    if seg.id in cut:
        return max(cut[seg.id], 0)
    if is_before(seg, cut_segments):
        return None if start else lengths[seg.id]
    if is_after(seg, cut_segments):
        return 0 if start else None
    return None


def sealed_between(prev: Cut, cur: Cut, segments: Mapping[int, SegmentRecord]) -> list[int]:
    """Segments wholly between two cuts: their full lengths are needed by ``bytes_between``."""
    prev_segs = [segments[i] for i in prev]
    cur_segs = [segments[i] for i in cur]
    return [s.id for s in segments.values()
            if s.id not in cur and s.id not in prev and is_before(s, cur_segs) and is_after(s, prev_segs)]


def bytes_between(prev: Cut, cur: Cut, segments: Mapping[int, SegmentRecord], lengths: Mapping[int, int]) -> int:
    """Bytes written between cut ``prev`` and the later cut ``cur``; ``lengths`` holds ``sealed_between``'s."""
    prev_segs = [segments[i] for i in prev]
    cur_segs = [segments[i] for i in cur]
    total = 0
    for seg in segments.values():
        begin = _position(seg, prev, prev_segs, lengths, start=True)
        if begin is None:
            continue
        end = _position(seg, cur, cur_segs, lengths, start=False)
        if end is not None and end > begin:
            total += end - begin
    return total


class RetentionJob:
    """Every ``period`` seconds: record a cut of each stream with a retention policy and truncate by policy."""

    def __init__(self, controller: Controller, clock: Clock, *, period: float = 1800.0) -> None:
        self.controller = controller
        self.clock = clock
        self.period = period
        self.truncations = 0

    async def run(self) -> None:
        await run_periodically(self.clock, self.period, self.run_once, "retention cycle")

    async def run_once(self) -> None:
        async for scope, stream in self.controller.store.user_streams():
            try:
                await self.process(scope, stream)
            except (StreamNotFoundError, NoSuchSegmentError, WriteConflictError) as exc:
                log.info("retention of %s/%s skipped this cycle: %s", scope, stream, exc)

    async def process(self, scope: str, stream: str) -> Cut | None:
        """One retention step for one stream; returns the cut truncated at, if any."""
        ctx = self.controller.ctx
        view = await ctx.view(scope, stream)
        if view.config.retention is None or view.state is not StreamState.ACTIVE:
            return None
        cut = {s.id: (await ctx.ops.get_segment_info(view.segment_name(s.id))).length
               for s in await ctx.active_segments(view)}
        segments = all_segments(await ctx.all_epochs(view))
        stored = await view.table.get(RETENTION_KEY)
        history = [] if stored is None else [RecordedCut.decode(r) for r in stored[0]["cuts"]]
        version = -1 if stored is None else stored[1]
        head = dict(await self.controller.head(scope, stream))
        prev, prev_size = (history[-1].cut, history[-1].size) if history else (head, 0)
        lengths = {i: (await ctx.ops.get_segment_info(view.segment_name(i))).length
                   for i in sealed_between(prev, cut, segments)}
        size = prev_size + bytes_between(prev, cut, segments, lengths)
        if not history or dict(history[-1].cut) != cut:
            history.append(RecordedCut(int(self.clock.time() * 1000), size, cut))
        truncation = await view.table.get_value("truncation")
        previous = None if truncation is None else {int(k): int(v) for k, v in truncation["cut"].items()}

        def at_or_after(a: Cut, b: Cut) -> bool:
            return cut_not_behind(a, b, segments)

        chosen = choose_truncation(view.config.retention, history, int(self.clock.time() * 1000), size,
                                   await self._subscriber_cuts(view.table, previous or head), previous or head,
                                   at_or_after)
        if chosen is not None:
            try:
                status = await self.controller.streams.truncate_stream(scope, stream, chosen)
            except InvalidTruncationError as exc:
                status = str(exc)
            if status == "SUCCESS":
                self.truncations += 1
                CONTROLLER_METRICS.retention_truncated()
                history = prune(history, chosen, at_or_after)
                log.info("retention truncated %s/%s at %s", scope, stream, dict(chosen))
            else:
                log.info("retention truncation of %s/%s refused: %s", scope, stream, status)
                chosen = None
        await view.table.put(RETENTION_KEY, {"cuts": [r.encode() for r in thin(history)]}, version)
        return chosen

    @staticmethod
    async def _subscriber_cuts(table: Table, head: Cut) -> list[Cut]:
        """Each subscriber's acknowledged cut (one that acknowledged nothing yet stands at the head)."""
        prefix = SUBSCRIBER_PREFIX.encode()
        cuts: list[Cut] = []
        async for key, value, _version in table.items():
            if key.startswith(prefix):
                raw = value.get("cut") if isinstance(value, dict) else None
                cuts.append({int(k): int(v) for k, v in raw.items()} if raw else head)
        return cuts
