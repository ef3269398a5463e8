"""The controller's side of auto-scaling (spec §5.2): turn the segment store's ``ScaleRequest``s into scales.

Pure part (no I/O): ``split_ranges`` (UP: ``n = min(max(2, splits), max(2, scaleFactor))`` parts, each as
wide as its share of the splits the rate needs, the last ending exactly at the old end), ``merge_candidates``
(DOWN: the segment and its cold adjacent neighbours, at most 3, never below ``minNumSegments``),
``ColdMarks`` (segment → cold until; silent = for good) and ``plan_request`` combining them into a
``ScalePlan``.

I/O part: ``AutoScaler`` polls the request table the segment store writes (``AUTOSCALE_TABLE``), ignores
requests older than ``validity`` seconds and streams with a FIXED policy, runs the plan through the
controller's scale workflow (which validates and performs it, spec §3.4), and removes each handled key
conditionally on the version it read, so a newer request that replaced it meanwhile survives. Requests that
hit a stream busy with another workflow stay for the next poll. Cold marks live in memory (a restarted
controller forgets them; the segment store re-sends DOWN requests while a segment stays cold).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anabranch.clock import Clock, run_periodically
from anabranch.controller.epochs import REASON_AUTO, SegmentRecord
from anabranch.controller.errors import NoSuchSegmentError, StreamNotFoundError, WriteConflictError
from anabranch.controller.records import ScalingConfig, StreamState
from anabranch.controller.segment_helper import iterate_entries
from anabranch.errors import DataCorruptionError
from anabranch.model.keyspace import Range, split_range
from anabranch.segmentstore.stats.requests import AUTOSCALE_TABLE, ScaleDirection, ScaleRequest, split_shares

if TYPE_CHECKING:
    from anabranch.controller.facade import Controller

log = logging.getLogger(__name__)

MAX_MERGE = 3


@dataclass(frozen=True, slots=True)
class ScalePlan:
    sealed: tuple[int, ...]
    new_ranges: tuple[Range, ...]


def split_ranges(segment: SegmentRecord, num_splits: int, scale_factor: int) -> list[Range] | None:
    """The UP split of ``segment``; None if its range is too narrow to split into distinct parts.

    ``parts = min(max(2, splits), max(2, scaleFactor))`` (Pravega); when the scale factor caps the parts below
    the splits the rate needs, each part is as wide as its share of those splits (``split_shares``), so later
    splits of the parts end at the needed count instead of overshooting it."""
    parts = min(max(2, num_splits), max(2, scale_factor))
    shares = split_shares(num_splits, parts)
    if len(set(shares)) == 1:
        ranges = split_range(segment.key_start, segment.key_end, parts)
    else:
        total, width = sum(shares), segment.key_end - segment.key_start
        bounds = [segment.key_start + width * sum(shares[:i]) / total for i in range(parts)] + [segment.key_end]
        ranges = [(bounds[i], bounds[i + 1]) for i in range(parts)]
    if any(start >= end for start, end in ranges):
        return None
    return ranges


def merge_candidates(active: Sequence[SegmentRecord], segment_id: int, is_cold: Callable[[int], bool],
                     min_segments: int) -> list[SegmentRecord] | None:
    """The adjacent cold segments (the requester and its neighbours, sorted by key) to merge into one."""
    by_id = {s.id: s for s in active}
    segment = by_id.get(segment_id)
    if segment is None or len(active) <= min_segments:
        return None
    candidates = sorted((s for s in active if s.id == segment_id or s.key_end == segment.key_start
                         or s.key_start == segment.key_end), key=lambda s: s.key_start)
    cold = [s for s in candidates if is_cold(s.id)]
    if len(cold) == MAX_MERGE and len(active) - min_segments == 1:
        cold = cold[:2]
    if len(cold) < 2 or any(cold[i].key_end != cold[i + 1].key_start for i in range(len(cold) - 1)):
        return None
    return cold


class ColdMarks:
    """Segments marked cold by DOWN requests, per stream: segment id → wall ms until which it stays cold."""

    def __init__(self) -> None:
        self._marks: dict[tuple[str, str], dict[int, float]] = {}

    def mark(self, scope: str, stream: str, segment_id: int, until_ms: float) -> None:
        marks = self._marks.setdefault((scope, stream), {})
        marks[segment_id] = max(marks.get(segment_id, -math.inf), until_ms)

    def is_cold(self, scope: str, stream: str, segment_id: int, now_ms: float) -> bool:
        return self._marks.get((scope, stream), {}).get(segment_id, -math.inf) > now_ms

    def forget_except(self, scope: str, stream: str, active: Sequence[int]) -> None:
        """Drop the marks of segments that are no longer active."""
        marks = self._marks.get((scope, stream))
        if marks is not None:
            keep = set(active)
            for seg_id in [s for s in marks if s not in keep]:
                del marks[seg_id]


def plan_request(request: ScaleRequest, active: Sequence[SegmentRecord], scaling: ScalingConfig,
                 cold: ColdMarks, now_ms: float, cold_period_ms: float) -> ScalePlan | None:
    """The scale a request asks for, if any (DOWN marks the segment cold first)."""
    if scaling.scale_type == 0:
        return None
    segment = next((s for s in active if s.id == request.segment_id), None)
    if request.direction is ScaleDirection.UP:
        if segment is None:
            return None
        ranges = split_ranges(segment, request.num_splits, scaling.scale_factor)
        return None if ranges is None else ScalePlan((segment.id,), tuple(ranges))
    until = math.inf if request.silent else request.timestamp + cold_period_ms
    cold.mark(request.scope, request.stream, request.segment_id, until)
    if segment is None:
        return None
    merged = merge_candidates(active, segment.id,
                              lambda seg_id: cold.is_cold(request.scope, request.stream, seg_id, now_ms),
                              scaling.min_segments)
    if merged is None:
        return None
    return ScalePlan(tuple(s.id for s in merged), ((merged[0].key_start, merged[-1].key_end),))


class AutoScaler:
    """Polls the auto-scale request table and scales streams through ``controller.scaling``."""

    def __init__(self, controller: Controller, clock: Clock, *, table: str = AUTOSCALE_TABLE,
                 poll_interval: float = 1.0, validity: float = 600.0, cold_period: float = 600.0) -> None:
        self.controller = controller
        self.clock = clock
        self.table = table
        self.poll_interval = poll_interval
        self.validity_ms = validity * 1000
        self.cold_period_ms = cold_period * 1000
        self.cold = ColdMarks()
        self.scales_started = 0
        self._table_ready = False

    async def run(self) -> None:
        """Poll forever (cancel to stop)."""
        await run_periodically(self.clock, self.poll_interval, self.poll_once, "auto-scale poll")

    async def poll_once(self) -> int:
        """Handle every pending request once; returns how many were handled (and removed)."""
        ops = self.controller.ctx.ops
        if not self._table_ready:
            await ops.create_table(self.table)
            self._table_ready = True
        entries = [entry async for entry in iterate_entries(ops, self.table)]
        handled = 0
        for key, value, version in entries:
            try:
                request = ScaleRequest.decode(value)
            except DataCorruptionError:
                log.warning("dropping a malformed auto-scale request under %r", key)
                done = True
            else:
                done = await self.handle(request)
            if not done:
                continue
            try:
                await ops.remove_keys(self.table, [(key, version)])
                handled += 1
            except (WriteConflictError, NoSuchSegmentError):
                log.debug("auto-scale request %r changed while it was handled; keeping the newer one", key)
        return handled

    async def handle(self, request: ScaleRequest) -> bool:
        """Apply one request; False if it should be retried later (the stream is busy)."""
        now_ms = self.clock.time() * 1000
        if now_ms - request.timestamp > self.validity_ms:
            log.info("ignoring a stale auto-scale request for %s", request.segment_name)
            return True
        ctx = self.controller.ctx
        try:
            view = await ctx.view(request.scope, request.stream)
        except StreamNotFoundError:
            return True
        if view.state in (StreamState.SEALING, StreamState.SEALED):
            return True
        if view.state is not StreamState.ACTIVE or view.transition is not None:
            return False
        active = await ctx.active_segments(view)
        self.cold.forget_except(request.scope, request.stream, [s.id for s in active])
        plan = plan_request(request, active, view.config.scaling, self.cold, now_ms, self.cold_period_ms)
        if plan is None:
            return True
        status, created, _epoch = await self.controller.scaling.scale(
            request.scope, request.stream, plan.sealed, plan.new_ranges, reason=REASON_AUTO)
        if status == "STARTED":
            self.scales_started += 1
            log.info("auto-scale %s of %s/%s: sealed %s, created %s", request.direction.name, request.scope,
                     request.stream, list(plan.sealed), [s.id for s in created])
        else:
            log.info("auto-scale %s of %s/%s refused: %s", request.direction.name, request.scope,
                     request.stream, status)
        return True
