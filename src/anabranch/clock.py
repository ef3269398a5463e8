"""Time as a dependency: the ``Clock`` every timer-driven component takes (auto-scale windows, retention
cycles, watermark periods, leases), with the real one and a manual one for tests.

``ManualClock`` never sleeps for real: ``advance(s)`` moves both its monotonic and its wall time and wakes
every sleeper whose deadline has passed, in deadline order. ``wait_for_sleepers(n)`` lets a test wait,
without sleeping, until its background jobs are parked on the clock again. Invariant: a manual clock's time
only moves forward, and only through ``advance``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals and deadlines)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (for timestamps stored or sent elsewhere)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to; sleepers wake on ``advance``."""

    def __init__(self, start_monotonic: float = 0.0, start_time: float = 1_700_000_000.0) -> None:
        self._monotonic = start_monotonic
        self._offset = start_time - start_monotonic
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._changed: asyncio.Condition | None = None

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._monotonic + self._offset

    @property
    def sleepers(self) -> int:
        """How many tasks are currently sleeping on this clock."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._monotonic + seconds, next(self._seq), future))
        await self._notify()
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake the sleepers whose deadline has passed."""
        if seconds < 0:
            raise ValueError(f"a manual clock only moves forward, not by {seconds} s")
        self._monotonic += seconds
        while self._sleepers and self._sleepers[0][0] <= self._monotonic:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def wait_for_sleepers(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait (real time, bounded) until at least ``count`` tasks sleep on this clock."""
        async with self._condition():
            await asyncio.wait_for(self._condition().wait_for(lambda: self.sleepers >= count), timeout)

    async def _notify(self) -> None:
        async with self._condition():
            self._condition().notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed


async def run_periodically(clock: Clock, period: float, step: Callable[[], Awaitable[object]], what: str) -> None:
    """Every ``period`` seconds of ``clock``, await ``step()``; a failed step is logged and the next one still
    runs. Returns only when cancelled: the loop of every periodic job (statistics ticks, auto-scale polls,
    retention and watermark cycles)."""
    while True:
        await clock.sleep(period)
        try:
            await step()
        except Exception:
            log.exception("%s failed; trying again in %s s", what, period)
