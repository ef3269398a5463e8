"""A deterministic auto-scale run: how many segments a stream reaches under a steady load, against what it needs.

It drives the real decision code on a ``ManualClock`` (no sockets, no sleeps): the segment store's
``SegmentStatsRecorder`` (aggregates, ``AutoScaleProcessor``: cool-down, mute, report interval) and the
controller's ``plan_request`` (how a request becomes a split or merge, bounded by the scale factor). The load is
spread uniformly over the key space, so a segment receives the stream's rate times its key-range width. A scale
takes effect on the controller's next poll; the events its writer held back meanwhile (``backlog_seconds`` of its
share) reach the new segments in their first tick, as a real writer's retries do. As in the controller's scale
workflow, the new segments are created before the old ones are sealed.

``scripts/autoscale_precision.py`` prints peak against needed for several loads; the unit tests assert it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from anabranch.clock import ManualClock
from anabranch.controller.autoscale import ColdMarks, plan_request
from anabranch.controller.epochs import SegmentRecord
from anabranch.controller.records import ScalingConfig
from anabranch.model.names import qualified_segment_name
from anabranch.segmentstore.stats.aggregates import SCALE_BY_EVENTS, AutoScaleConfig
from anabranch.segmentstore.stats.recorder import SegmentStatsRecorder
from anabranch.segmentstore.stats.requests import ScaleRequest

SCOPE, STREAM = "sim", "load"


@dataclass(slots=True)
class AutoScaleRun:
    """What one simulated run reached."""

    needed: int
    """Segments the load needs: ceil(rate / target)."""
    peak: int
    final: int
    first_split_s: float | None
    """Seconds (of the compressed clock) from the start to the first split."""
    reached_needed_s: float | None
    """Seconds until the stream first had at least ``needed`` segments (None if never)."""
    history: list[tuple[float, int]] = field(default_factory=list)
    """(seconds, segment count) after every change."""

    @property
    def precision(self) -> float:
        return self.peak / self.needed


async def simulate(rate: float, target: int, *, scale_factor: int = 2, time_scale: float = 60.0,
                   seconds: float | None = None, backlog_seconds: float = 0.0, initial_segments: int = 1
                   ) -> AutoScaleRun:
    """Run a stream of ``initial_segments`` under ``rate`` events/s (policy: ``target`` events/s per segment,
    ``scale_factor``) for ``seconds`` of the compressed clock (default: 4 cool-downs plus the 20-minute window)."""
    config = AutoScaleConfig.compressed(time_scale)
    scaling = ScalingConfig(SCALE_BY_EVENTS, target, scale_factor, initial_segments)
    duration = seconds if seconds is not None else 4 * config.cooldown + config.windows[3]
    poll_interval = max(0.05, 1.0 / time_scale)
    clock = ManualClock()
    requests: list[ScaleRequest] = []

    async def report(request: ScaleRequest) -> None:
        requests.append(request)

    recorder = SegmentStatsRecorder.from_config(clock, report, config)
    width = 1.0 / initial_segments
    active = [SegmentRecord(i, 0, 0, i * width, 1.0 if i == initial_segments - 1 else (i + 1) * width)
              for i in range(initial_segments)]
    for segment in active:
        recorder.record_create(_name(segment), SCALE_BY_EVENTS, target)
    backlog: dict[int, float] = {}
    carry: dict[int, float] = {}
    """Fractions of an event not sent yet, per segment (whole events go out, none is lost to rounding)."""
    cold = ColdMarks()
    next_number, epoch = initial_segments, 0
    needed = math.ceil(rate / target)
    run = AutoScaleRun(needed, len(active), len(active), None, None, [(0.0, len(active))])
    next_poll = poll_interval
    while clock.monotonic() < duration:
        clock.advance(config.tick)
        now = clock.monotonic()
        for segment in active:
            due = rate * (segment.key_end - segment.key_start) * config.tick + backlog.pop(segment.id, 0.0)
            due += carry.pop(segment.id, 0.0)
            events = int(due)
            carry[segment.id] = due - events
            recorder.record_append(_name(segment), events * 100, events)
        await recorder.tick()
        if now < next_poll:
            continue
        next_poll = now + poll_interval
        pending, requests[:] = list(requests), []
        for request in pending:
            plan = plan_request(request, active, scaling, cold, clock.time() * 1000, config.cooldown * 1000)
            if plan is None:
                continue
            sealed = [s for s in active if s.id in plan.sealed]
            epoch += 1
            children = []
            for start, end in plan.new_ranges:
                children.append(SegmentRecord(next_number, epoch, int(now * 1000), start, end))
                next_number += 1
            active = sorted([s for s in active if s.id not in plan.sealed] + children, key=lambda s: s.key_start)
            for child in children:
                recorder.record_create(_name(child), SCALE_BY_EVENTS, target)
                backlog[child.id] = rate * (child.key_end - child.key_start) * backlog_seconds
            for segment in sealed:
                recorder.record_seal(_name(segment))
            if len(children) > len(sealed) and run.first_split_s is None:
                run.first_split_s = now
            run.history.append((now, len(active)))
            run.peak = max(run.peak, len(active))
            if run.reached_needed_s is None and len(active) >= needed:
                run.reached_needed_s = now
    run.final = len(active)
    return run


def _name(segment: SegmentRecord) -> str:
    return qualified_segment_name(SCOPE, STREAM, segment.id)
