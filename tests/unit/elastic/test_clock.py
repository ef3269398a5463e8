"""ManualClock: sleepers wake in deadline order on advance, never by real time."""

from __future__ import annotations

import asyncio
import threading

import pytest

from anabranch.clock import ManualClock, SystemClock, wait_first, wait_with_timeout


async def test_sleepers_wake_when_their_deadline_passes() -> None:
    clock = ManualClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 10)), asyncio.create_task(sleeper("early", 5))]
    await clock.wait_for_sleepers(2)
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(0.1)
    await asyncio.wait_for(tasks[1], 1)
    assert woke == ["early"]
    clock.advance(5)
    await asyncio.wait_for(tasks[0], 1)
    assert woke == ["early", "late"]
    assert clock.monotonic() == 10
    assert clock.sleepers == 0


async def test_wall_time_moves_with_monotonic_time() -> None:
    clock = ManualClock(start_monotonic=3.0, start_time=1000.0)
    clock.advance(2.5)
    assert clock.monotonic() == 5.5
    assert clock.time() == 1002.5


async def test_time_never_goes_back() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_zero_sleep_only_yields() -> None:
    clock = ManualClock()
    await asyncio.wait_for(clock.sleep(0), 1)


async def test_wait_for_sleepers_is_bounded() -> None:
    clock = ManualClock()
    with pytest.raises(TimeoutError):
        await clock.wait_for_sleepers(1, timeout=0.05)


async def test_system_clock_is_real() -> None:
    clock = SystemClock()
    before = clock.monotonic()
    await clock.sleep(0.001)
    assert clock.monotonic() >= before
    assert clock.time() > 1_600_000_000


async def test_settle_waits_until_woken_jobs_park_again() -> None:
    clock = ManualClock()
    steps: list[float] = []
    done = asyncio.Event()

    async def job() -> None:
        while True:
            await clock.sleep(5)
            await done.wait()  # work that takes a while (I/O in real jobs)
            steps.append(clock.monotonic())

    task = asyncio.create_task(job())
    await clock.wait_for_sleepers(1)
    clock.advance(5)
    with pytest.raises(TimeoutError):
        await clock.settle(timeout=0.05)
    done.set()
    await clock.settle()
    assert steps == [5]
    await clock.tick(5)
    assert steps == [5, 10]
    task.cancel()


async def test_a_thread_drives_sleepers_of_another_threads_loop() -> None:
    clock = ManualClock()
    woke = threading.Event()

    async def sleeper() -> None:
        await clock.sleep(3)
        woke.set()
        await clock.sleep(100)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(sleeper(),), daemon=True)
    thread.start()
    try:
        await asyncio.to_thread(clock.wait_for_sleepers_blocking, 1, 5.0)
        await asyncio.to_thread(clock.tick_blocking, 3)
        assert woke.is_set()
        assert clock.sleepers == 1
    finally:
        clock.advance(100)
        await asyncio.to_thread(thread.join, 5)
        loop.close()


async def test_timeouts_follow_the_manual_clock() -> None:
    clock = ManualClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(wait_first(clock, {never}, 30))
    await clock.wait_for_sleepers(1)
    clock.advance(29)
    await asyncio.sleep(0)
    assert not waiting.done()
    await clock.tick(1)
    assert await waiting == set()
    timed = asyncio.create_task(wait_with_timeout(clock, asyncio.sleep(3600), 10))
    await clock.wait_for_sleepers(1)
    clock.advance(10)
    with pytest.raises(TimeoutError):
        await timed
    assert await wait_with_timeout(clock, asyncio.sleep(0, "ready"), 10) == "ready"
