"""ManualClock: sleepers wake in deadline order on advance, never by real time."""

from __future__ import annotations

import asyncio

import pytest

from anabranch.clock import ManualClock, SystemClock


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
