"""Retention: the truncation choice (time, size, subscribers), byte accounting across scales, and the job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anabranch.clock import ManualClock
from anabranch.controller.epochs import SegmentRecord
from anabranch.controller.facade import Controller
from anabranch.controller.records import RetentionConfig, ScalingConfig, StreamConfiguration
from anabranch.controller.retention import (
    UNBOUNDED,
    RecordedCut,
    RetentionJob,
    bytes_between,
    choose_truncation,
    prune,
    sealed_between,
    thin,
)
from anabranch.controller.segment_helper_memory import InMemorySegmentStore
from anabranch.model.names import qualified_segment_name, segment_id

TIME = RetentionConfig(1, 12_000, UNBOUNDED)


def linear(a: Mapping[int, int], b: Mapping[int, int]) -> bool:
    return all(a[k] >= b[k] for k in b)


def history(*points: tuple[int, int]) -> list[RecordedCut]:
    return [RecordedCut(t, offset, {0: offset}) for t, offset in points]


HISTORY = history((0, 0), (10_000, 100), (20_000, 200), (30_000, 300))


def test_time_retention_truncates_at_newest_cut_older_than_min() -> None:
    assert choose_truncation(TIME, HISTORY, 35_000, 350, [], None, linear) == {0: 200}
    assert choose_truncation(TIME, HISTORY, 31_999, 350, [], None, linear) == {0: 100}
    assert choose_truncation(TIME, HISTORY, 11_999, 350, [], None, linear) is None
    assert choose_truncation(TIME, HISTORY, 35_000, 350, [], {0: 200}, linear) is None
    assert choose_truncation(None, HISTORY, 35_000, 350, [], None, linear) is None
    assert choose_truncation(RetentionConfig(0, 1, 1), HISTORY, 35_000, 350, [], None, linear) is None


def test_size_retention_keeps_at_least_min_bytes() -> None:
    size = RetentionConfig(2, 150, UNBOUNDED)
    assert choose_truncation(size, HISTORY, 0, 350, [], None, linear) == {0: 200}
    assert choose_truncation(size, HISTORY, 0, 349, [], None, linear) == {0: 100}
    assert choose_truncation(size, HISTORY, 0, 100, [], None, linear) is None


def test_subscribers_hold_truncation_back_but_not_beyond_max() -> None:
    bounded = RetentionConfig(1, 12_000, 22_000)
    now = 35_000
    assert choose_truncation(bounded, HISTORY, now, 350, [{0: 250}, {0: 400}], None, linear) == {0: 200}
    assert choose_truncation(bounded, HISTORY, now, 350, [{0: 150}, {0: 400}], None, linear) == {0: 150}
    assert choose_truncation(bounded, HISTORY, now, 350, [{0: 50}], None, linear) == {0: 100}
    assert choose_truncation(TIME, HISTORY, now, 350, [{0: 50}], None, linear) == {0: 50}
    assert choose_truncation(TIME, HISTORY, now, 350, [{0: 50}], {0: 50}, linear) is None


def test_unordered_subscriber_cuts_fall_back_to_a_recorded_cut_all_have_passed() -> None:
    two = [RecordedCut(t, 2 * o, {0: o, 1: o}) for t, o in ((0, 0), (10_000, 100), (20_000, 200))]
    subscribers = [{0: 150, 1: 500}, {0: 500, 1: 120}]
    assert choose_truncation(TIME, two, 40_000, 400, subscribers, None, linear) == {0: 100, 1: 100}
    behind = [{0: 50, 1: 500}, {0: 500, 1: 50}]
    assert choose_truncation(TIME, two, 40_000, 400, behind, None, linear) == {0: 0, 1: 0}
    assert choose_truncation(TIME, two, 40_000, 400, behind, {0: 0, 1: 0}, linear) is None


def test_prune_forgets_cuts_truncated_past() -> None:
    assert prune(HISTORY, {0: 200}, linear) == HISTORY[3:]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=12), st.integers(0, 30_000), st.integers(0, 30_000),
       st.lists(st.integers(0, 20_000), max_size=3), st.integers(0, 200_000))
def test_truncation_respects_min_max_and_subscribers(gaps: list[int], param: int, extra: int,
                                                     subscribers: list[int], elapsed: int) -> None:
    points, t, offset = [], 0, 0
    for gap in gaps:
        t += 1000
        offset += gap
        points.append((t, offset))
    recorded = history(*points)
    policy = RetentionConfig(1, param, param + extra if extra else UNBOUNDED)
    now = t + elapsed
    chosen = choose_truncation(policy, recorded, now, offset, [{0: s} for s in subscribers], None, linear)
    old_enough = [r.cut[0] for r in recorded if r.time_ms <= now - param]
    if chosen is None:
        return
    assert old_enough and chosen[0] <= max(old_enough)
    if subscribers and policy.max < UNBOUNDED:
        too_old = [r.cut[0] for r in recorded if r.time_ms <= now - policy.max]
        assert chosen[0] <= max([min(subscribers), *too_old])
    elif subscribers:
        assert chosen[0] <= min(subscribers)


def test_bytes_between_counts_across_scales() -> None:
    segs = {s.id: s for s in (
        SegmentRecord(0, 0, 0, 0.0, 1.0),
        SegmentRecord(1, 1, 0, 0.0, 0.5), SegmentRecord(2, 1, 0, 0.5, 1.0),
        SegmentRecord(3, 2, 0, 0.5, 0.75), SegmentRecord(4, 2, 0, 0.75, 1.0),
    )}
    s1, s2, s3, s4 = segment_id(1, 1), segment_id(2, 1), segment_id(3, 2), segment_id(4, 2)
    assert bytes_between({0: 10}, {s1: 5, s2: 7}, segs, {0: 100}) == 90 + 5 + 7
    cur = {s1: 5, s3: 1, s4: 2}
    assert sealed_between({0: 10}, cur, segs) == [s2]
    assert bytes_between({0: 10}, cur, segs, {0: 100, s2: 50}) == 90 + 5 + 50 + 1 + 2
    assert bytes_between({s1: 5, s2: 7}, cur, segs, {s2: 50}) == 43 + 1 + 2


# --- the job against a controller over the in-memory segment store ------------------------------------

@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    c = Controller(InMemorySegmentStore(), "127.0.0.1", 12345)
    await c.bootstrap()
    assert await c.streams.create_scope("sc") == "SUCCESS"
    yield c


async def test_job_records_cuts_and_truncates_by_time(controller: Controller) -> None:
    memory = controller.ctx.ops
    assert isinstance(memory, InMemorySegmentStore)
    config = StreamConfiguration(ScalingConfig(0, 0, 0, 2), RetentionConfig(1, 60_000, UNBOUNDED))
    assert await controller.streams.create_stream("sc", "st", config) == "SUCCESS"
    assert await controller.streams.create_stream("sc", "keep", StreamConfiguration()) == "SUCCESS"
    clock = ManualClock()
    job = RetentionJob(controller, clock, period=30)
    names = [qualified_segment_name("sc", "st", segment_id(i, 0)) for i in range(2)]
    cuts = []
    for step in range(5):
        for name in names:
            memory.append(name, 100)
        await job.run_once()
        cuts.append({segment_id(0, 0): 100 * (step + 1), segment_id(1, 0): 100 * (step + 1)})
        clock.advance(30)
    assert job.truncations == 3
    head = dict(await controller.head("sc", "st"))
    assert head == cuts[2]
    view = await controller.ctx.view("sc", "st")
    stored = await view.table.get_value("retention")
    assert [RecordedCut.decode(r).cut for r in stored["cuts"]] == cuts[3:]
    assert [RecordedCut.decode(r).size for r in stored["cuts"]] == [800, 1000]
    assert await (await controller.ctx.view("sc", "keep")).table.get_value("retention") is None


async def test_job_runs_on_its_clock(controller: Controller) -> None:
    memory = controller.ctx.ops
    assert isinstance(memory, InMemorySegmentStore)
    config = StreamConfiguration(ScalingConfig(0, 0, 0, 1), RetentionConfig(2, 50, UNBOUNDED))
    assert await controller.streams.create_stream("sc", "st", config) == "SUCCESS"
    clock = ManualClock()
    job = RetentionJob(controller, clock, period=10)
    task = asyncio.create_task(job.run())
    try:
        for _ in range(3):
            await clock.wait_for_sleepers(1)
            memory.append(qualified_segment_name("sc", "st", 0), 100)
            clock.advance(10)
        await clock.wait_for_sleepers(1)
    finally:
        task.cancel()
    assert dict(await controller.head("sc", "st")) == {0: 200}


async def test_job_waits_for_subscribers(controller: Controller) -> None:
    memory = controller.ctx.ops
    assert isinstance(memory, InMemorySegmentStore)
    config = StreamConfiguration(ScalingConfig(0, 0, 0, 1), RetentionConfig(2, 100, 1000))
    assert await controller.streams.create_stream("sc", "st", config) == "SUCCESS"
    view = await controller.ctx.view("sc", "st")
    await view.table.put("subscriber/sc/rg", {"id": "x", "generation": 0})
    clock = ManualClock()
    job = RetentionJob(controller, clock, period=10)
    name = qualified_segment_name("sc", "st", 0)
    for _ in range(3):
        memory.append(name, 200)
        await job.run_once()
    assert dict(await controller.head("sc", "st")) == {0: 0}
    await view.table.put("subscriber/sc/rg", {"id": "x", "generation": 0, "cut": {0: 250}})
    memory.append(name, 200)
    await job.run_once()
    assert dict(await controller.head("sc", "st")) == {0: 250}
    for _ in range(6):
        memory.append(name, 200)
        await job.run_once()
    assert dict(await controller.head("sc", "st")) == {0: 1000}


def test_thinning_keeps_the_newest_half_and_the_first_cut() -> None:
    many = history(*((i, i) for i in range(1000)))
    kept = thin(many, 256)
    assert len(kept) <= 256 and kept[0] == many[0] and kept[-128:] == many[-128:]
    assert [r.time_ms for r in kept] == sorted(r.time_ms for r in kept)
    assert thin(many[:10], 256) == many[:10]
