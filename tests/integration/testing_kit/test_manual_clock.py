"""Time-dependent behaviour through a real (in-process) segment store and controller and our client, all on one
``ManualClock``: a transaction times out, readers rebalance, time-based retention truncates, auto-scaling splits
— each by advancing the clock, with no real sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from testing_kit_rig import Clocked

from anabranch.client import (
    EventStreamReader,
    ReaderGroupConfig,
    RetentionPolicy,
    ScalingPolicy,
    StreamConfiguration,
    StringSerializer,
)
from anabranch.clock import ManualClock

SCOPE = "clocked"


async def eventually(done: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Whether ``done()`` holds within ``timeout`` real seconds: for effects that arrive over the network after a
    woken job ran (a reader's fetch, a sync's table update), which no clock can announce."""
    deadline = time.monotonic() + timeout
    while not await done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


async def tick_until(clock: ManualClock, step: float, done: Callable[[], Awaitable[bool]], limit: float,
                     settle: float = 0.3) -> float:
    """Advance ``clock`` by ``step`` until ``done()`` (given up to ``settle`` real seconds after each step);
    the manual seconds it took."""
    spent = 0.0
    while not await eventually(done, settle):
        if spent >= limit:
            raise AssertionError(f"condition not reached within {limit} s of manual time")
        await clock.tick(step)
        spent += step
    return spent


@contextlib.asynccontextmanager
async def reading(reader: EventStreamReader[str]) -> AsyncIterator[list[str]]:
    """Reads in the background (each read waits on the manual clock) into the yielded list."""
    received: list[str] = []

    async def loop() -> None:
        while True:
            read = await reader.read_next_event(timeout=1.0)
            if read.event is not None:
                received.append(read.event)

    task = asyncio.create_task(loop())
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_an_unpinged_transaction_times_out_and_a_pinged_one_does_not(clocked: Clocked) -> None:
    started = time.monotonic()
    manager, clock = clocked.manager, clocked.clock
    await manager.create_scope(SCOPE)
    await manager.create_stream(SCOPE, "txns")
    writer = manager.create_transactional_writer(SCOPE, "txns", StringSerializer())
    live = await writer.begin_txn(lease_ms=10_000)
    await live.write_event("kept alive by pings")
    abandoned = await manager.controller.create_transaction(SCOPE, "txns", 10_000)  # no client pings it

    await clock.tick(9)
    assert (await manager.controller.check_transaction_state(SCOPE, "txns", abandoned.txn_id)).name == "OPEN"
    for _ in range(3):  # 12 s more, in steps: the writer's pinger (every lease/3 s) and the lease timer both run
        await clock.tick(4)
    assert (await manager.controller.check_transaction_state(SCOPE, "txns", abandoned.txn_id)).name in (
        "ABORTING", "ABORTED")
    assert (await live.check_status()).name == "OPEN"
    await live.commit()
    assert time.monotonic() - started < 5


async def test_a_new_reader_takes_over_segments_at_the_next_refresh(clocked: Clocked) -> None:
    manager, clock = clocked.manager, clocked.clock
    await manager.create_scope(SCOPE)
    await manager.create_stream(SCOPE, "pair", StreamConfiguration(scaling=ScalingPolicy.fixed(2)))
    writer = manager.create_writer(SCOPE, "pair", StringSerializer())
    for i in range(20):
        await writer.write_event(f"e{i}", routing_key=f"k{i}")
    await writer.flush()
    group = await manager.create_reader_group(
        SCOPE, "rg", ReaderGroupConfig.for_streams(SCOPE, "pair", group_refresh_time=30.0))
    first = await group.create_reader("first", StringSerializer())
    async with reading(first) as got_first:
        await tick_until(clock, 0.5, lambda: _holds(group, "first", 2), 5)
        assert await eventually(lambda: _true(len(got_first) == 20), 5)
        second = await group.create_reader("second", StringSerializer())
        async with reading(second):
            await clock.tick(10)
            assert len((await group.state()).segments_of("second")) == 0, "no rebalance before the refresh time"
            spent = 10 + await tick_until(clock, 5.0, lambda: _holds(group, "second", 1), 60, settle=0.1)
            assert (await group.state()).segments_of("first").keys().isdisjoint(
                (await group.state()).segments_of("second").keys())
            assert 25 <= spent <= 35, f"the first reader released a segment after {spent} s more, not at its refresh"
        await second.close()
    await first.close()


async def test_a_silent_readers_lease_expires_and_its_segments_move(clocked: Clocked) -> None:
    manager, clock = clocked.manager, clocked.clock
    await manager.create_scope(SCOPE)
    await manager.create_stream(SCOPE, "leased", StreamConfiguration(scaling=ScalingPolicy.fixed(2)))
    group = await manager.create_reader_group(
        SCOPE, "leases", ReaderGroupConfig.for_streams(SCOPE, "leased", group_refresh_time=1.0, reader_lease=10.0))
    survivor = await group.create_reader("survivor", StringSerializer())
    silent = await group.create_reader("silent", StringSerializer())
    async with reading(survivor) as received:
        async with reading(silent):
            await tick_until(clock, 0.5, lambda: _holds(group, "silent", 1), 10)
            await tick_until(clock, 0.5, lambda: _holds(group, "survivor", 1), 10)
        # the silent reader's task is gone (a hung or crashed process): it never syncs again
        await clock.tick(9)
        assert len((await group.state()).segments_of("silent")) == 1, "taken offline before its lease ran out"
        spent = 9 + await tick_until(clock, 1.0, lambda: _holds(group, "survivor", 2), 10, settle=0.1)
        assert "silent" not in (await group.state()).readers
        assert 10 <= spent <= 13, spent
        writer = manager.create_writer(SCOPE, "leased", StringSerializer())
        for i in range(20):
            await writer.write_event(f"e{i}", routing_key=f"k{i}")
        await writer.flush()
        assert await eventually(lambda: _true(len(received) == 20), 5), "the survivor reads both segments"


async def _holds(group: object, reader: str, count: int) -> bool:
    return len((await group.state()).segments_of(reader)) == count  # type: ignore[attr-defined]


async def _true(value: bool) -> bool:
    return value


async def test_time_based_retention_truncates_what_is_older_than_the_policy(clocked: Clocked) -> None:
    manager, clock = clocked.manager, clocked.clock
    await manager.create_scope(SCOPE)
    config = StreamConfiguration(retention=RetentionPolicy.by_time(3_000_000))  # 50 minutes
    await manager.create_stream(SCOPE, "aging", config)
    writer = manager.create_writer(SCOPE, "aging", StringSerializer())
    for i in range(10):
        await writer.write_event(f"old{i}")
    await writer.flush()
    await clock.tick(1800)  # the retention job (every 30 min) records the tail as a cut
    for i in range(10):
        await writer.write_event(f"new{i}")
    await writer.flush()
    head = await manager.get_head_stream_cut(SCOPE, "aging")
    assert all(offset == 0 for offset in head.positions.values())
    await clock.tick(1800)  # the first cut is 30 min old: kept
    assert all(offset == 0 for offset in (await manager.get_head_stream_cut(SCOPE, "aging")).positions.values())
    await clock.tick(1800)  # now 60 min old: truncated there
    head = await manager.get_head_stream_cut(SCOPE, "aging")
    assert any(offset > 0 for offset in head.positions.values())
    group = await manager.create_reader_group(SCOPE, "after", ReaderGroupConfig.for_streams(SCOPE, "aging"))
    reader = await group.create_reader("r", StringSerializer())
    async with reading(reader) as received:
        assert await eventually(lambda: _true(len(received) >= 10), 5)
    assert received == [f"new{i}" for i in range(10)]
    await reader.close()


async def test_sustained_traffic_splits_a_segment(clocked: Clocked) -> None:
    started = time.monotonic()
    manager, clock = clocked.manager, clocked.clock
    await manager.create_scope(SCOPE)
    await manager.create_stream(SCOPE, "hot", StreamConfiguration(scaling=ScalingPolicy.by_event_rate(1, 2, 1)))
    writer = manager.create_writer(SCOPE, "hot", StringSerializer())
    step, events_per_second = 30.0, 10  # ten times the target rate

    async def split() -> bool:
        return len(await manager.get_current_segments(SCOPE, "hot")) > 1

    spent = 0.0
    while not await split():
        assert spent < 1800, "no split within 30 minutes of manual time at ten times the target rate"
        await writer.write_events([f"e{i}" for i in range(round(events_per_second * step))])
        await writer.flush()
        await clock.tick(step)
        spent += step
    assert spent >= 600, f"split after {spent} s: before the segment's 10-minute cool-down"
    assert time.monotonic() - started < 5
