"""Controller-side auto-scaling (spec §5.2): pure decisions (property-tested) and the request-table poller."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anabranch.clock import ManualClock
from anabranch.controller.autoscale import (
    AutoScaler,
    ColdMarks,
    ScalePlan,
    merge_candidates,
    plan_request,
    split_ranges,
)
from anabranch.controller.epochs import EpochRecord, SegmentRecord, first_epoch, next_epoch, validate_scale
from anabranch.controller.facade import Controller
from anabranch.controller.records import ScalingConfig, StreamConfiguration
from anabranch.controller.segment_helper_memory import InMemorySegmentStore
from anabranch.model.keyspace import initial_ranges, split_range
from anabranch.model.names import segment_id
from anabranch.protocol.commands import NO_VERSION
from anabranch.segmentstore.stats import AUTOSCALE_TABLE, ScaleDirection, ScaleRequest
from anabranch.segmentstore.stats.requests import split_shares

MIN10 = 600_000


def test_split_into_bounded_equal_parts_ending_at_the_old_end() -> None:
    s = first_epoch(initial_ranges(3), 0, 0).sorted_segments()[2]
    ranges = split_ranges(s, 7, 4)
    assert ranges is not None and len(ranges) == 4
    assert ranges[0][0] == s.key_start and ranges[-1][1] == 1.0
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(3))
    assert len(split_ranges(s, 1, 0) or []) == 2
    assert len(split_ranges(s, 9, 1) or []) == 2


def test_a_capped_split_makes_parts_as_wide_as_their_share_of_the_need() -> None:
    s = first_epoch(initial_ranges(1), 0, 0).sorted_segments()[0]
    assert split_ranges(s, 10, 10) == split_range(0.0, 1.0, 10)
    ranges = split_ranges(s, 5, 2)
    assert ranges is not None and math.isclose(ranges[0][1], 0.6) and ranges[1] == (ranges[0][1], 1.0)
    ranges = split_ranges(s, 10, 4)
    assert ranges is not None
    widths = [end - start for start, end in ranges]
    assert [round(w * 10) for w in widths] == [3, 3, 2, 2] and ranges[-1][1] == 1.0
    assert split_shares(10, 4) == [3, 3, 2, 2] and split_shares(1, 2) == [1, 1] and split_shares(4, 2) == [2, 2]


def test_merge_takes_cold_neighbours_only() -> None:
    active = first_epoch(initial_ranges(5), 0, 0).sorted_segments()
    ids = [s.id for s in active]

    def cold(*which: int) -> Callable[[int], bool]:
        return lambda seg_id: seg_id in {ids[i] for i in which}

    assert merge_candidates(active, ids[2], cold(1, 2, 3), 1) == active[1:4]
    assert merge_candidates(active, ids[2], cold(2, 3), 1) == active[2:4]
    assert merge_candidates(active, ids[2], cold(2), 1) is None
    assert merge_candidates(active, ids[2], cold(1, 3), 1) is None
    assert merge_candidates(active, ids[2], cold(0, 1, 2, 3, 4), 4) == active[1:3]
    assert merge_candidates(active, ids[2], cold(1, 2, 3), 5) is None
    assert merge_candidates(active, ids[0], cold(0, 1, 2), 1) == active[0:2]


def test_cold_marks_expire_and_silent_ones_do_not() -> None:
    marks = ColdMarks()
    marks.mark("s", "t", 1, 1000)
    marks.mark("s", "t", 2, math.inf)
    assert marks.is_cold("s", "t", 1, 999) and not marks.is_cold("s", "t", 1, 1000)
    assert marks.is_cold("s", "t", 2, 10**15)
    marks.forget_except("s", "t", [1])
    assert not marks.is_cold("s", "t", 2, 0)


def test_fixed_policy_and_unknown_segments_are_ignored() -> None:
    active = first_epoch(initial_ranges(2), 0, 0).sorted_segments()
    up = ScaleRequest("s", "t", active[0].id, ScaleDirection.UP, 3, False, 0)
    assert plan_request(up, active, ScalingConfig(0, 0, 0, 2), ColdMarks(), 0, MIN10) is None
    gone = ScaleRequest("s", "t", segment_id(9, 3), ScaleDirection.UP, 3, False, 0)
    assert plan_request(gone, active, ScalingConfig(2, 10, 2, 1), ColdMarks(), 0, MIN10) is None
    plan = plan_request(up, active, ScalingConfig(2, 10, 2, 1), ColdMarks(), 0, MIN10)
    # 3 splits needed, 2 allowed at once: the parts are 2/3 and 1/3 of the range (the first splits again later)
    assert plan == ScalePlan((active[0].id,), ((0.0, 0.5 * 2 / 3), (0.5 * 2 / 3, 0.5)))


requests_strategy = st.lists(
    st.tuples(st.integers(0, 10**6), st.sampled_from(list(ScaleDirection)), st.integers(0, 12), st.booleans(),
              st.integers(0, 3)),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 8), requests_strategy)
def test_any_sequence_of_decisions_keeps_a_valid_key_space(min_segments: int, extra: int, scale_factor: int,
                                                           requests: list[tuple[int, ScaleDirection, int, bool,
                                                                                int]]) -> None:
    scaling = ScalingConfig(2, 10, scale_factor, min_segments)
    epoch: EpochRecord = first_epoch(initial_ranges(min_segments + extra - 1), 0, 0)
    next_number = len(epoch.segments)
    cold = ColdMarks()
    now = 0
    for pick, direction, splits, silent, wait_minutes in requests:
        now += wait_minutes * 60_000
        active = epoch.sorted_segments()
        target = active[pick % len(active)]
        request = ScaleRequest("s", "t", target.id, direction, splits, silent, now)
        plan = plan_request(request, active, scaling, cold, now, MIN10)
        if plan is None:
            continue
        validate_scale(epoch, plan.sealed, plan.new_ranges, min_segments)
        epoch = next_epoch(epoch, plan.sealed, plan.new_ranges, next_number, now)
        next_number += len(plan.new_ranges)
        segments = epoch.sorted_segments()
        assert len(segments) >= min_segments
        assert segments[0].key_start == 0.0 and segments[-1].key_end == 1.0
        assert all(a.key_end == b.key_start for a, b in itertools.pairwise(segments))
        assert all(s.key_start < s.key_end for s in segments)


# --- the poller against a controller over the in-memory segment store -----------------------------

@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    c = Controller(InMemorySegmentStore(), "127.0.0.1", 12345)
    await c.bootstrap()
    assert await c.streams.create_scope("sc") == "SUCCESS"
    yield c


async def put_request(c: Controller, request: ScaleRequest) -> None:
    await c.ctx.ops.create_table(AUTOSCALE_TABLE)
    await c.ctx.ops.update_table(AUTOSCALE_TABLE, [(request.key(), request.encode(), NO_VERSION)])


async def active(c: Controller, stream: str) -> list[SegmentRecord]:
    view = await c.ctx.view("sc", stream)
    return list(await c.ctx.active_segments(view))


async def test_poller_splits_then_merges_back(controller: Controller) -> None:
    clock = ManualClock(start_time=1_000_000.0)
    now = int(clock.time() * 1000)
    config = StreamConfiguration(ScalingConfig(2, 10, 3, 1))
    assert await controller.streams.create_stream("sc", "st", config) == "SUCCESS"
    scaler = AutoScaler(controller, clock)
    assert await scaler.poll_once() == 0
    (only,) = await active(controller, "st")
    await put_request(controller, ScaleRequest("sc", "st", only.id, ScaleDirection.UP, 6, False, now))
    assert await scaler.poll_once() == 1
    parts = await active(controller, "st")
    assert [(p.key_start, p.key_end) for p in parts] == [(0.0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1.0)]
    assert await scaler.poll_once() == 0
    for part in parts[:2]:
        await put_request(controller, ScaleRequest("sc", "st", part.id, ScaleDirection.DOWN, 0, False, now))
    assert await scaler.poll_once() == 2
    after = await active(controller, "st")
    assert [(p.key_start, p.key_end) for p in after] == [(0.0, 2 / 3), (2 / 3, 1.0)]
    silent = ScaleRequest("sc", "st", after[1].id, ScaleDirection.DOWN, 0, True, now)
    await put_request(controller, silent)
    await scaler.poll_once()
    assert len(await active(controller, "st")) == 2
    assert scaler.scales_started == 2


async def test_poller_ignores_stale_fixed_and_unknown(controller: Controller) -> None:
    clock = ManualClock(start_time=1_000_000.0)
    now = int(clock.time() * 1000)
    assert await controller.streams.create_stream("sc", "fixed", StreamConfiguration()) == "SUCCESS"
    assert await controller.streams.create_stream("sc", "rated", StreamConfiguration(ScalingConfig(2, 1, 2, 1))) \
        == "SUCCESS"
    scaler = AutoScaler(controller, clock)
    await put_request(controller, ScaleRequest("sc", "fixed", 0, ScaleDirection.UP, 2, False, now))
    await put_request(controller, ScaleRequest("sc", "rated", 0, ScaleDirection.UP, 2, False, now - MIN10 - 1))
    await put_request(controller, ScaleRequest("sc", "nope", 0, ScaleDirection.UP, 2, False, now))
    await controller.ctx.ops.update_table(AUTOSCALE_TABLE, [(b"garbage", b"not json", NO_VERSION)])
    assert await scaler.poll_once() == 4
    assert len(await active(controller, "fixed")) == 1 and len(await active(controller, "rated")) == 1
    assert scaler.scales_started == 0


async def test_poller_runs_on_the_clock(controller: Controller) -> None:
    clock = ManualClock(start_time=1_000_000.0)
    assert await controller.streams.create_stream("sc", "st", StreamConfiguration(ScalingConfig(1, 1, 2, 1))) \
        == "SUCCESS"
    scaler = AutoScaler(controller, clock, poll_interval=2.0)
    task = asyncio.create_task(scaler.run())
    try:
        await clock.wait_for_sleepers(1)
        await put_request(controller, ScaleRequest("sc", "st", 0, ScaleDirection.UP, 2, False,
                                                   int(clock.time() * 1000)))
        clock.advance(2.0)
        await clock.wait_for_sleepers(1)
    finally:
        task.cancel()
    assert len(await active(controller, "st")) == 2
