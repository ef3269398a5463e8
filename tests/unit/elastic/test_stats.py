"""Segment traffic statistics and the segment store's auto-scale decisions (spec §5.1), on a ManualClock."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anabranch.clock import ManualClock
from anabranch.errors import DataCorruptionError
from anabranch.model.names import qualified_segment_name, segment_id
from anabranch.segmentstore.stats import (
    AUTOSCALE_TABLE,
    AutoScaleConfig,
    AutoScaleProcessor,
    ScaleDirection,
    ScaleRequest,
    SegmentAggregate,
    SegmentStatsRecorder,
    TableScaleReporter,
    decide,
    store_policy_lookup,
)
from anabranch.segmentstore.stats import recorder as recorder_module
from anabranch.segmentstore.store import open_segment_store
from anabranch.segmentstore.tables import TableStore

SEG = qualified_segment_name("sc", "st", segment_id(0, 0))
WINDOWS = (120.0, 300.0, 600.0, 1200.0)


class Collect:
    def __init__(self) -> None:
        self.requests: list[ScaleRequest] = []

    async def __call__(self, request: ScaleRequest) -> None:
        self.requests.append(request)


async def drive(clock: ManualClock, recorder: SegmentStatsRecorder, seconds: float, events_per_second: float,
                segment: str = SEG, nbytes_per_event: int = 100) -> None:
    tick = recorder.config.tick
    for _ in range(round(seconds / tick)):
        events = round(events_per_second * tick)
        if events:
            recorder.record_append(segment, events * nbytes_per_event, events)
        clock.advance(tick)
        await recorder.tick()


# --- aggregates -------------------------------------------------------------------------------

CONFIG = AutoScaleConfig()


def test_first_traffic_sets_the_rate_then_it_decays_with_pravega_alpha() -> None:
    agg = SegmentAggregate(2, 10, 0.0, CONFIG)
    agg.record(0, 500)
    assert agg.tick(5.0)
    assert agg.rates == [100.0] * 4
    agg.record(0, 1000)
    agg.tick(10.0)
    for rate, window in zip(agg.rates, WINDOWS, strict=True):
        assert math.isclose(rate, 100 + (1 - math.exp(-5 / window)) * 100)
    before = list(agg.rates)
    assert not agg.tick(15.0)
    for rate, old, window in zip(agg.rates, before, WINDOWS, strict=True):
        assert math.isclose(rate, old * math.exp(-5 / window))


def test_a_late_tick_decays_the_silent_intervals_first() -> None:
    agg = SegmentAggregate(2, 10, 0.0, CONFIG)
    agg.record(0, 500)
    agg.tick(5.0)
    agg.record(0, 70)
    agg.tick(5.0 + 3 * 5 + 2)
    alpha = 1 - math.exp(-5 / 120)
    expected = 100.0
    for _ in range(2):
        expected += alpha * (0 - expected)
    expected += alpha * (70 / 7 - expected)
    assert math.isclose(agg.rates[0], expected)


def test_constant_rate_converges() -> None:
    agg = SegmentAggregate(2, 10, 0.0, CONFIG)
    agg.record(0, 1)
    agg.tick(5.0)
    for i in range(2, 2000):
        agg.record(0, 50)
        agg.tick(5.0 * i)
    assert all(math.isclose(r, 10.0, rel_tol=1e-3) for r in agg.rates)


def test_throughput_rates_are_kib_per_second() -> None:
    agg = SegmentAggregate(1, 10, 0.0, CONFIG)
    agg.record(5 * 1024 * 7, 1)
    agg.tick(5.0)
    assert agg.rates[0] == 7.0


def test_long_transaction_counts_its_average_over_one_tick() -> None:
    agg = SegmentAggregate(2, 10, 0.0, CONFIG)
    agg.record_merge(0, 6000, 600.0)
    assert agg.pending == 50.0
    agg.record_merge(0, 7, 4.9)
    assert agg.pending == 57.0


# --- the decision -----------------------------------------------------------------------------

def test_decide_follows_pravega_rules() -> None:
    c = AutoScaleConfig()
    assert decide(c, 10, 599, 100, 100, 100, 100) is None
    assert decide(c, 10, 700, 51, 0, 0, 0) == (ScaleDirection.UP, 5)
    assert decide(c, 10, 700, 0, 21, 0, 0) == (ScaleDirection.UP, 2)
    assert decide(c, 10, 700, 0, 0, 10.5, 0) is None  # the split margin (1.2): a hysteresis Pravega lacks
    assert decide(c, 10, 700, 0, 0, 12.5, 0) == (ScaleDirection.UP, 2)
    assert decide(AutoScaleConfig(split_margin=1.0), 10, 700, 0, 0, 10.5, 0) == (ScaleDirection.UP, 2)
    assert decide(c, 10, 700, 0, 0, 0, 0) is None
    assert decide(c, 10, 1300, 9, 9, 9, 4.9) == (ScaleDirection.DOWN, 0)
    assert decide(c, 10, 1300, 9, 9, 9, 5.0) is None
    fast = AutoScaleConfig(cooldown=0)
    assert decide(fast, 10, 299, 49, 19, 10.5, 0) is None
    assert decide(fast, 10, 301, 49, 19, 10.5, 0) is None
    assert decide(fast, 10, 301, 49, 21, 10.5, 0) == (ScaleDirection.UP, 5)  # ceil: the segments the rate needs
    assert decide(fast, 10, 301, 40.5, 21, 10.5, 0) == (ScaleDirection.UP, 4)  # within the split tolerance
    assert decide(fast, 10, 121, 51, 21, 10.5, 0) == (ScaleDirection.UP, 5)


@given(st.floats(1, 1e6), st.floats(0, 1e5), st.lists(st.floats(0, 1e7), min_size=4, max_size=4))
def test_decide_never_splits_into_fewer_than_two(target: float, age: float, rates: list[float]) -> None:
    decision = decide(AutoScaleConfig(), target, age, *rates)
    if age <= 600:
        assert decision is None
    if decision is not None and decision[0] is ScaleDirection.UP:
        assert decision[1] >= 2
        assert decision[1] >= math.floor(max(rates[:3]) / target)


# --- the recorder -----------------------------------------------------------------------------

async def test_hot_segment_asks_to_split_once_then_is_muted() -> None:
    clock, out = ManualClock(), Collect()
    recorder = SegmentStatsRecorder(clock, out)
    recorder.record_create(SEG, 2, 10)
    await drive(clock, recorder, 600, 60)
    assert out.requests == []
    await drive(clock, recorder, 120, 60)
    assert len(out.requests) == 1
    request = out.requests[0]
    assert (request.scope, request.stream, request.segment_id) == ("sc", "st", 0)
    assert request.direction is ScaleDirection.UP and not request.silent
    assert request.num_splits >= 2
    assert request.timestamp == (1_700_000_000 + 625) * 1000
    await drive(clock, recorder, 525, 60)
    assert len(out.requests) == 1
    await drive(clock, recorder, 10, 60)
    assert len(out.requests) == 2


async def test_cool_segment_asks_to_merge() -> None:
    clock, out = ManualClock(), Collect()
    recorder = SegmentStatsRecorder(clock, out)
    recorder.record_create(SEG, 2, 100)
    await drive(clock, recorder, 1320, 10)
    downs = [r for r in out.requests if r.direction is ScaleDirection.DOWN]
    assert len(downs) == 1 and not downs[0].silent


async def test_idle_segment_gets_a_silent_merge_request() -> None:
    clock, out = ManualClock(), Collect()
    recorder = SegmentStatsRecorder(clock, out, cooldown=10_000)
    recorder.record_create(SEG, 2, 100)
    await drive(clock, recorder, 125, 10)
    await drive(clock, recorder, 1190, 0)
    assert out.requests == []
    await drive(clock, recorder, 10, 0)
    assert [(r.direction, r.silent) for r in out.requests] == [(ScaleDirection.DOWN, True)]


async def test_untracked_segments_never_report() -> None:
    clock, out = ManualClock(), Collect()
    recorder = SegmentStatsRecorder(clock, out, cooldown=0, idle_expiry=30)
    txn = SEG + "#transaction." + "ab" * 16
    recorder.record_create(txn, 2, 1)
    recorder.record_create("sc/st/1.#epoch.0", 0, 0)
    recorder.record_create("_system/_tables/x", 2, 1)
    for name in (txn, "sc/st/1.#epoch.0", "_system/_tables/x"):
        recorder.record_append(name, 10**6, 10**4)
    await drive(clock, recorder, 300, 0)
    assert out.requests == [] and recorder.statistics()["tracked_segments"] == 0


async def test_sealed_segment_is_forgotten() -> None:
    clock, out = ManualClock(), Collect()
    recorder = SegmentStatsRecorder(clock, out, cooldown=0, report_interval=5, idle_expiry=30)
    recorder.record_create(SEG, 2, 1000)
    await drive(clock, recorder, 10, 1)
    recorder.record_seal(SEG)
    recorder.record_append(SEG, 10, 1)
    await drive(clock, recorder, 100, 0)
    assert out.requests == [] and recorder.rates(SEG) is None


async def test_policy_is_looked_up_after_a_restart() -> None:
    clock, out = ManualClock(), Collect()
    looked_up: list[str] = []

    async def lookup(name: str) -> tuple[int, int] | None:
        looked_up.append(name)
        return (2, 10) if name == SEG else None

    recorder = SegmentStatsRecorder(clock, out, policy_lookup=lookup)
    recorder.record_append(SEG, 100, 1)
    recorder.record_append("sc/st/9.#epoch.0", 100, 1)
    await recorder.tick()
    recorder.record_append("sc/st/9.#epoch.0", 100, 1)
    await recorder.tick()
    assert sorted(looked_up) == [SEG, "sc/st/9.#epoch.0"]
    assert recorder.rates(SEG) == (0.0, 0.0, 0.0, 0.0)


async def test_idle_fixed_segments_cost_nothing_and_written_ones_are_looked_up_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_module, "MAX_UNTRACKED", 4)
    clock, out = ManualClock(), Collect()
    looked_up: list[str] = []

    async def lookup(name: str) -> tuple[int, int] | None:
        looked_up.append(name)
        return (0, 0)

    recorder = SegmentStatsRecorder(clock, out, policy_lookup=lookup)
    idle = [f"sc/idle-{i}/0.#epoch.0" for i in range(100)]
    for name in idle:
        recorder.record_create(name, 0, 0)
    assert len(recorder._untracked) == 0
    written = [f"sc/w-{i}/0.#epoch.0" for i in range(3)]
    for _ in range(3):
        for name in written:
            recorder.record_append(name, 10, 1)
        await recorder.tick()
    assert sorted(looked_up) == written
    many = [f"sc/m-{i}/0.#epoch.0" for i in range(10)]
    for name in many:
        recorder.record_append(name, 10, 1)
    await recorder.tick()
    assert len(recorder._untracked) <= 4
    assert out.requests == []


async def test_reporter_failure_does_not_stop_the_ticks() -> None:
    clock = ManualClock()
    calls: list[ScaleRequest] = []

    async def broken(request: ScaleRequest) -> None:
        calls.append(request)
        raise OSError("table unavailable")

    recorder = SegmentStatsRecorder(clock, broken, cooldown=0, report_interval=5, idle_expiry=5)
    recorder.record_create(SEG, 2, 10)
    recorder.record_create("sc/st/1.#epoch.0", 2, 10)
    recorder.record_append(SEG, 1, 1)
    recorder.record_append("sc/st/1.#epoch.0", 1, 1)
    await drive(clock, recorder, 200, 0)
    assert len(calls) == 2


async def test_compressed_config_runs_on_the_clock() -> None:
    config = AutoScaleConfig.compressed(60)
    assert config.tick == 5 / 60 and config.cooldown == 10
    clock, out = ManualClock(), Collect()
    recorder = SegmentStatsRecorder.from_config(clock, out, config)
    recorder.record_create(SEG, 2, 10)
    task = asyncio.create_task(recorder.run())
    try:
        for _ in range(round(13 / config.tick)):
            await clock.wait_for_sleepers(1)
            recorder.record_append(SEG, 0, 60)
            clock.advance(config.tick)
        await clock.wait_for_sleepers(1)
    finally:
        task.cancel()
    assert [r.direction for r in out.requests] == [ScaleDirection.UP]


async def test_table_reporter_stores_the_latest_request_per_segment(tmp_path: Path) -> None:
    store = await open_segment_store(tmp_path, 2, durable=False)
    try:
        tables = TableStore(store)
        reporter = TableScaleReporter(tables)
        first = ScaleRequest("sc", "st", 0, ScaleDirection.UP, 3, False, 1000)
        second = ScaleRequest("sc", "st", 0, ScaleDirection.DOWN, 0, True, 2000)
        other = ScaleRequest("sc", "st", segment_id(4, 1), ScaleDirection.UP, 2, False, 1500)
        await reporter(first)
        await reporter(other)
        await TableScaleReporter(tables)(second)
        entries, _ = await tables.iterate_entries(AUTOSCALE_TABLE, b"", 10)
        stored = {key: ScaleRequest.decode(value) for key, _, value in entries}
        assert stored == {SEG.encode(): second, b"sc/st/4.#epoch.1": other}
    finally:
        await store.close()


def test_request_round_trips_and_rejects_garbage() -> None:
    request = ScaleRequest("a", "b", segment_id(3, 2), ScaleDirection.DOWN, 0, True, 123)
    assert ScaleRequest.decode(request.encode()) == request
    assert request.key() == b"a/b/3.#epoch.2"
    for raw in (b"", b"{}", b'{"direction": "SIDEWAYS"}', b"\xff"):
        with pytest.raises(DataCorruptionError):
            ScaleRequest.decode(raw)


async def test_transaction_traffic_counts_when_merged() -> None:
    clock, out = ManualClock(), Collect()
    recorder = SegmentStatsRecorder(clock, out)
    recorder.record_create(SEG, 2, 10)
    txn = SEG + "#transaction." + "cd" * 16
    aborted = SEG + "#transaction." + "ef" * 16
    recorder.record_create(txn, 2, 10)
    recorder.record_append(txn, 1000, 3000)
    recorder.record_append(aborted, 1000, 50)
    await drive(clock, recorder, 300, 0)
    recorder.record_append(txn, 1000, 3000)
    recorder.record_seal(txn)
    recorder.record_delete(aborted)
    recorder.record_transaction_merge(SEG, aborted)
    assert recorder.rates(SEG) == (0.0, 0.0, 0.0, 0.0)
    recorder.record_transaction_merge(SEG, txn)
    rates = recorder.rates(SEG)
    assert rates is not None
    assert rates == (0.0, 0.0, 0.0, 0.0)
    clock.advance(5)
    await recorder.tick()
    rates = recorder.rates(SEG)
    assert rates is not None and math.isclose(rates[1], 6000 / 300)
    recorder.record_transaction_merge(SEG, txn)
    assert recorder.rates(SEG) == rates


async def test_store_policy_lookup_reads_segment_metadata(tmp_path: Path) -> None:
    store = await open_segment_store(tmp_path, 1, durable=False)
    try:
        await store.create_segment(SEG, scale_type=2, target_rate=7)
        await store.create_segment("sc/st/1.#epoch.0")
        lookup = store_policy_lookup(store)
        assert await lookup(SEG) == (2, 7)
        assert await lookup("sc/st/1.#epoch.0") == (0, 0)
        assert await lookup("sc/st/2.#epoch.0") is None
        clock, out = ManualClock(), Collect()
        recorder = SegmentStatsRecorder(clock, out, policy_lookup=lookup)
        recorder.record_append(SEG, 1, 1)
        await recorder.tick()
        assert recorder.statistics()["tracked_segments"] == 1
    finally:
        await store.close()


def test_processor_mutes_like_pravega() -> None:
    processor = AutoScaleProcessor(AutoScaleConfig(cooldown=0, mute=100, idle_expiry=1000))
    hot, cold = [100.0, 100.0, 100.0, 100.0], [0.0, 0.0, 0.0, 0.0]
    processor.notify_created(SEG, 0.0)
    assert processor.report(SEG, 10, 0.0, hot, 100.0, 1) is None
    up = processor.report(SEG, 10, 0.0, hot, 130.0, 2)
    assert up is not None and up.direction is ScaleDirection.UP and up.num_splits == 10
    assert processor.report(SEG, 10, 0.0, hot, 200.0, 3) is None
    assert processor.report(SEG, 10, 0.0, cold, 2000.0, 4) is not None
    assert processor.report(SEG, 10, 0.0, cold, 2050.0, 5) is None
    assert processor.report(SEG, 10, 0.0, hot, 2060.0, 6) is not None


def test_created_segment_expires_without_traffic() -> None:
    processor = AutoScaleProcessor(AutoScaleConfig(idle_expiry=1000))
    processor.notify_created(SEG, 0.0)
    processor.notify_created("sc/st/1.#epoch.0", 0.0)
    processor.forget("sc/st/1.#epoch.0")
    assert processor.expire(999.0, 7) == []
    assert processor.expire(1000.0, 7) == [ScaleRequest("sc", "st", 0, ScaleDirection.DOWN, 0, True, 7)]
    assert SEG not in processor
    assert processor.expire(5000.0, 8) == []
