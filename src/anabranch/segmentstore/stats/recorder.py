"""``SegmentStatsRecorder``: the segment store's per-segment traffic statistics and its auto-scale reports.

The request handler calls ``record_*`` as segments are created, appended to (once per append block), merged,
sealed and deleted; every call is O(1) and does no I/O. ``run`` ticks on the clock every ``config.tick``
seconds: it folds traffic into each aggregate's rates, lets segments with traffic in that tick report to the
``AutoScaleProcessor`` at most once per ``report_interval`` seconds, expires idle segments (silent DOWN), and
hands the resulting ``ScaleRequest``s to the reporter. Only stream segments with a rate policy (scale
type 1 or 2 and a positive target) are tracked; appends to a transaction segment of a tracked segment are
counted aside and added, spread over the transaction's life (since its first append), when it is merged
(``record_transaction_merge``). After a restart the recorder learns a segment's policy on its first append
through ``policy_lookup`` (resolved on the next tick) and treats it as created then (so an idle segment still
expires into a silent DOWN). The segments a scale creates start from their key-range share of the rates of the
segments it seals (``_seed_successors``), so they neither inherit the parent's whole rate nor take the burst of
held-back events in their first tick for their rate. Reporter failures are logged and do not stop the ticks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from anabranch.admin.metrics import SEGMENT_STORE as SEGMENT_STORE_METRICS
from anabranch.clock import Clock, run_periodically
from anabranch.errors import InvalidNameError
from anabranch.model.names import (
    TRANSACTION_DELIMITER,
    TRANSIENT_DELIMITER,
    ScopedSegment,
    parent_segment_name,
    segment_epoch,
    segment_number,
)
from anabranch.segmentstore.stats.aggregates import SCALE_BY_EVENTS, SCALE_BY_KIB, AutoScaleConfig, SegmentAggregate
from anabranch.segmentstore.stats.processor import AutoScaleProcessor
from anabranch.segmentstore.stats.requests import ScaleRequest, split_shares

log = logging.getLogger(__name__)
MAX_UNTRACKED = 16_384
"""Segments remembered as not auto-scaled (see ``SegmentStatsRecorder._remember_untracked``)."""

ScaleReporter = Callable[[ScaleRequest], Awaitable[None]]
PolicyLookup = Callable[[str], Awaitable[tuple[int, int] | None]]
"""segment name → (scale type, target rate), or None if the segment does not exist."""


def _trackable(segment: str, scale_type: int, target_rate: int) -> bool:
    if scale_type not in (SCALE_BY_KIB, SCALE_BY_EVENTS) or target_rate <= 0:
        return False
    if TRANSACTION_DELIMITER in segment or TRANSIENT_DELIMITER in segment:
        return False
    try:
        ScopedSegment.parse(segment)
    except InvalidNameError:
        return False
    return True


class SegmentStatsRecorder:
    def __init__(self, clock: Clock, reporter: ScaleReporter, *, cooldown: float = 600.0, mute: float = 600.0,
                 report_interval: float = 120.0, idle_expiry: float = 1200.0, tick: float = 5.0,
                 windows: tuple[float, float, float, float] = (120.0, 300.0, 600.0, 1200.0),
                 policy_lookup: PolicyLookup | None = None, split_margin: float = 1.2) -> None:
        self.clock = clock
        self.config = AutoScaleConfig(tick, windows, cooldown, mute, report_interval, idle_expiry, split_margin)
        self._reporter = reporter
        self._lookup = policy_lookup
        self._processor = AutoScaleProcessor(self.config)
        self._aggregates: dict[str, SegmentAggregate] = {}
        self._untracked: set[str] = set()
        self._unknown: set[str] = set()
        self._newest: dict[tuple[str, str], tuple[int, list[str]]] = {}
        """(scope, stream) → (epoch, tracked segments created in it): the successors of the next sealed segment."""
        self._splits: dict[str, int] = {}
        """segment → the splits its last UP request asked for (the shares of its successors' rates)."""
        self._transactions: dict[str, list[float]] = {}
        """transaction segment → [bytes, events, monotonic time of its first append]"""
        self.reported = 0

    @classmethod
    def from_config(cls, clock: Clock, reporter: ScaleReporter, config: AutoScaleConfig, *,
                    policy_lookup: PolicyLookup | None = None) -> SegmentStatsRecorder:
        return cls(clock, reporter, cooldown=config.cooldown, mute=config.mute,
                   report_interval=config.report_interval, idle_expiry=config.idle_expiry, tick=config.tick,
                   windows=config.windows, policy_lookup=policy_lookup, split_margin=config.split_margin)

    # --- hooks (hot path: O(1), no I/O) -----------------------------------------------------

    def record_create(self, segment: str, scale_type: int, target_rate: int) -> None:
        self.record_policy(segment, scale_type, target_rate)
        if segment in self._aggregates:
            self._processor.notify_created(segment, self.clock.monotonic())
            parsed = ScopedSegment.parse(segment)
            epoch = segment_epoch(parsed.segment_id)
            key = (parsed.scope, parsed.stream)
            newest = self._newest.get(key)
            if newest is None or newest[0] < epoch:
                self._newest[key] = (epoch, [segment])
            elif newest[0] == epoch:
                newest[1].append(segment)

    def record_policy(self, segment: str, scale_type: int, target_rate: int) -> None:
        """A segment was created or its policy changed."""
        self._unknown.discard(segment)
        if not _trackable(segment, scale_type, target_rate):
            self._aggregates.pop(segment, None)
            self._processor.forget(segment)
            return
        self._untracked.discard(segment)
        aggregate = self._aggregates.get(segment)
        if aggregate is None:
            self._aggregates[segment] = SegmentAggregate(scale_type, target_rate, self.clock.monotonic(),
                                                         self.config)
        else:
            aggregate.set_policy(scale_type, target_rate)

    def record_append(self, segment: str, nbytes: int, events: int) -> None:
        aggregate = self._aggregates.get(segment)
        if aggregate is not None:
            aggregate.record(nbytes, events)
        else:
            self._record_other(segment, nbytes, events)

    def _record_other(self, segment: str, nbytes: int, events: int) -> None:
        """An append to an untracked segment: count transactions of tracked segments, learn unknown policies."""
        counts = self._transactions.get(segment)
        if counts is not None:
            counts[0] += nbytes
            counts[1] += events
        elif TRANSACTION_DELIMITER in segment:
            if parent_segment_name(segment) in self._aggregates:
                self._transactions[segment] = [nbytes, events, self.clock.monotonic()]
        elif self._lookup is not None and segment not in self._untracked:
            self._unknown.add(segment)

    def record_transaction_merge(self, target: str, source: str) -> None:
        """Transaction segment ``source`` was merged into ``target``: its traffic counts, spread over its life."""
        counts = self._transactions.pop(source, None)
        if counts is not None:
            nbytes, events, first_append = counts
            self.record_merge(target, int(nbytes), int(events), self.clock.monotonic() - first_append)

    def record_merge(self, target: str, nbytes: int, events: int, txn_age: float) -> None:
        """A transaction of ``txn_age`` seconds with ``nbytes``/``events`` was merged into ``target``."""
        aggregate = self._aggregates.get(target)
        if aggregate is not None:
            aggregate.record_merge(nbytes, events, txn_age)

    def record_seal(self, segment: str) -> None:
        if segment not in self._transactions:
            self._seed_successors(segment)
            self._forget(segment)

    def _seed_successors(self, segment: str) -> None:
        """A scale creates the new segments, then seals the old ones: the segments created in the stream's newest
        epoch (later than the sealed one's) start from their key-range share of its rates. A split's parts are
        as wide as their ``split_shares`` of the splits it asked for (equal when it asked for none)."""
        aggregate = self._aggregates.get(segment)
        if aggregate is None:
            return
        parsed = ScopedSegment.parse(segment)
        newest = self._newest.get((parsed.scope, parsed.stream))
        if newest is None or newest[0] <= segment_epoch(parsed.segment_id):
            return
        successors = sorted((s for s in newest[1] if s in self._aggregates),
                            key=lambda name: segment_number(ScopedSegment.parse(name).segment_id))
        if not successors:
            return
        shares = split_shares(self._splits.pop(segment, len(successors)), len(successors))
        total = sum(shares)
        for successor, share in zip(successors, shares, strict=True):
            self._aggregates[successor].seed(aggregate.rates, share / total)

    def record_delete(self, segment: str) -> None:
        if self._transactions.pop(segment, None) is None:
            self._forget(segment)

    def _forget(self, segment: str) -> None:
        self._aggregates.pop(segment, None)
        self._splits.pop(segment, None)
        self._unknown.discard(segment)
        self._untracked.discard(segment)
        self._processor.forget(segment)

    # --- introspection ----------------------------------------------------------------------

    def rates(self, segment: str) -> tuple[float, float, float, float] | None:
        """(r2, r5, r10, r20) of a tracked segment."""
        aggregate = self._aggregates.get(segment)
        if aggregate is None:
            return None
        r2, r5, r10, r20 = aggregate.rates
        return r2, r5, r10, r20

    def statistics(self) -> dict[str, int]:
        return {"tracked_segments": len(self._aggregates), "scale_requests_reported": self.reported}

    # --- ticks ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick forever on the clock (cancel to stop)."""
        await run_periodically(self.clock, self.config.tick, self.tick, "auto-scale statistics tick")

    async def tick(self) -> None:
        await self._resolve_unknown()
        now = self.clock.monotonic()
        wall_ms = int(self.clock.time() * 1000)
        requests: list[ScaleRequest] = []
        interval = self.config.report_interval
        for segment, aggregate in self._aggregates.items():
            if aggregate.tick(now) and now - aggregate.last_report > interval:
                aggregate.last_report = now
                request = self._processor.report(segment, aggregate.target_rate, aggregate.start_time,
                                                 aggregate.rates, now, wall_ms)
                if request is not None:
                    requests.append(request)
                    if request.num_splits:
                        self._splits[segment] = request.num_splits
        requests.extend(self._processor.expire(now, wall_ms))
        for request in requests:
            try:
                await self._reporter(request)
                self.reported += 1
                SEGMENT_STORE_METRICS.scale_reported(request.direction.name.lower())
                log.info("auto-scale request: %s %s (splits %d, silent %s)", request.direction.name,
                         request.segment_name, request.num_splits, request.silent)
            except Exception:
                log.exception("could not report auto-scale request for %s", request.segment_name)

    async def _resolve_unknown(self) -> None:
        if not self._unknown or self._lookup is None:
            return
        pending, self._unknown = self._unknown, set()
        for segment in pending:
            try:
                policy = await self._lookup(segment)
            except Exception:
                log.warning("could not look up the scaling policy of %s", segment, exc_info=True)
                continue
            if policy is None or not _trackable(segment, *policy):
                self._remember_untracked(segment)
            else:
                self.record_create(segment, *policy)

    def _remember_untracked(self, segment: str) -> None:
        """Appends to ``segment`` need no policy lookup any more. Only segments that were appended to are
        remembered (not every segment created with a fixed policy: that was a set entry per idle stream), and at
        most ``MAX_UNTRACKED`` of them: past it the set starts over, costing one lookup per segment written."""
        if len(self._untracked) >= MAX_UNTRACKED:
            self._untracked.clear()
        self._untracked.add(segment)
