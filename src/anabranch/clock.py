"""Time as a dependency: the ``Clock`` every timer-driven component takes (auto-scale windows, retention
cycles, watermark periods, transaction leases, and on the client retries, reader-group refreshes, read
timeouts and transaction pings), with the real one and a manual one for tests.

``ManualClock`` never sleeps for real: ``advance(s)`` moves both its monotonic and its wall time and wakes
every sleeper whose deadline has passed, in deadline order. A test then waits, without sleeping, for the
effects: ``await clock.settle()`` returns once every task that advance woke is parked on the clock again
(or has finished), and ``await clock.wait_for_sleepers(n)`` once ``n`` tasks sleep on it. The clock is
thread-safe: a test's thread may drive a clock whose sleepers run on an embedded server's event loop in
another thread (``settle_blocking`` / ``wait_for_sleepers_blocking`` are the forms for such a thread).
Invariant: a manual clock's time only moves forward, and only through ``advance``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


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


SYSTEM_CLOCK = SystemClock()
"""The one real clock every component defaults to."""


@dataclass(eq=False)
class _Sleeper:
    deadline: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    task: asyncio.Task[object] | None


@dataclass(eq=False)
class _Waiter:
    """Someone waiting until ``ready()`` holds: a future on an event loop, or an event for a plain thread."""

    ready: Callable[[], bool]
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[None] | None = None
    event: threading.Event = field(default_factory=threading.Event)


class ManualClock:
    """A clock that moves only when told to; sleepers wake on ``advance``. Thread-safe."""

    def __init__(self, start_monotonic: float = 0.0, start_time: float = 1_700_000_000.0) -> None:
        self._monotonic = start_monotonic
        self._offset = start_time - start_monotonic
        self._lock = threading.RLock()
        self._heap: list[tuple[float, int, _Sleeper]] = []
        self._parked: dict[int, _Sleeper] = {}
        self._seq = itertools.count()
        self._woken: list[asyncio.Task[object]] = []
        self._watched: set[asyncio.Task[object]] = set()
        self._waiters: list[_Waiter] = []

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._monotonic + self._offset

    @property
    def sleepers(self) -> int:
        """How many tasks are currently sleeping on this clock."""
        return len(self._parked)

    def next_deadline(self) -> float | None:
        """The earliest monotonic time a sleeper waits for, or None when none sleeps."""
        with self._lock:
            return min((s.deadline for s in self._parked.values()), default=None)

    async def sleep(self, seconds: float, *, owner: asyncio.Task[Any] | None = None) -> None:
        """Sleep ``seconds`` of manual time. ``owner``: the task that counts as parked while this sleeps (default:
        the calling one; a timeout timer run as its own task names the task waiting for it)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        task = owner or asyncio.current_task()
        sleeper = _Sleeper(0.0, loop, loop.create_future(), task)
        with self._lock:
            sleeper.deadline = self._monotonic + seconds
            seq = next(self._seq)
            heapq.heappush(self._heap, (sleeper.deadline, seq, sleeper))
            self._parked[seq] = sleeper
            if task is not None and task not in self._watched:
                self._watched.add(task)
                task.add_done_callback(self._task_done)
            self._check_waiters()
        try:
            await sleeper.future
        finally:
            with self._lock:
                if self._parked.pop(seq, None) is not None:  # cancelled while asleep
                    self._check_waiters()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake the sleepers whose deadline has passed (in deadline order).
        Callable from any thread."""
        if seconds < 0:
            raise ValueError(f"a manual clock only moves forward, not by {seconds} s")
        with self._lock:
            self._monotonic += seconds
            self._woken = [task for task in self._woken if not task.done()]
            while self._heap and self._heap[0][0] <= self._monotonic:
                _, seq, sleeper = heapq.heappop(self._heap)
                if self._parked.pop(seq, None) is None:
                    continue
                if sleeper.task is not None:
                    self._woken.append(sleeper.task)
                _resolve(sleeper.loop, sleeper.future)
            self._check_waiters()

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait (real time, bounded) until every task the last ``advance`` calls woke sleeps on this clock again
        or has finished: the jobs those deadlines started have done their work. A task waiting for I/O with a
        timeout on this clock counts as parked: effects that arrive over the network later (a reader's fetch)
        are waited for by the test itself."""
        await self._wait(self._settled, timeout, "the tasks woken by advance() to park again")

    async def tick(self, seconds: float, timeout: float = 10.0) -> None:
        """``advance(seconds)`` then ``settle()``."""
        self.advance(seconds)
        await self.settle(timeout)

    async def wait_for_sleepers(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait (real time, bounded) until at least ``count`` tasks sleep on this clock."""
        await self._wait(lambda: len(self._parked) >= count, timeout, f"{count} sleepers")

    def settle_blocking(self, timeout: float = 10.0) -> None:
        """``settle`` for a thread that runs no event loop (the clock's sleepers run on another thread's loop)."""
        self._wait_blocking(self._settled, timeout, "the tasks woken by advance() to park again")

    def tick_blocking(self, seconds: float, timeout: float = 10.0) -> None:
        """``advance(seconds)`` then ``settle_blocking()``."""
        self.advance(seconds)
        self.settle_blocking(timeout)

    def wait_for_sleepers_blocking(self, count: int = 1, timeout: float = 10.0) -> None:
        """``wait_for_sleepers`` for a thread that runs no event loop."""
        self._wait_blocking(lambda: len(self._parked) >= count, timeout, f"{count} sleepers")

    def _settled(self) -> bool:
        parked = {sleeper.task for sleeper in self._parked.values()}
        return all(task.done() or task in parked for task in self._woken)

    async def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(ready, loop, loop.create_future())
        with self._lock:
            if ready():
                return
            self._waiters.append(waiter)
        assert waiter.future is not None
        try:
            await asyncio.wait_for(waiter.future, timeout)
        except TimeoutError:
            raise TimeoutError(f"manual clock: gave up waiting {timeout} s for {what} "
                               f"({len(self._parked)} sleeping)") from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _wait_blocking(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        waiter = _Waiter(ready)
        with self._lock:
            if ready():
                return
            self._waiters.append(waiter)
        try:
            if not waiter.event.wait(timeout):
                raise TimeoutError(f"manual clock: gave up waiting {timeout} s for {what} "
                                   f"({len(self._parked)} sleeping)")
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        with self._lock:
            self._watched.discard(task)
            self._check_waiters()

    def _check_waiters(self) -> None:
        """Called with the lock held after every change: release the waiters whose condition now holds."""
        for waiter in list(self._waiters):
            if waiter.ready():
                self._waiters.remove(waiter)
                waiter.event.set()
                if waiter.loop is not None and waiter.future is not None:
                    _resolve(waiter.loop, waiter.future)


def _resolve(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    """Complete ``future`` on its own loop, from whichever thread calls."""

    def complete() -> None:
        if not future.done():
            future.set_result(None)

    if loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        complete()
    else:
        loop.call_soon_threadsafe(complete)


async def wait_with_timeout(clock: Clock, awaitable: Awaitable[T], timeout: float) -> T:
    """``asyncio.wait_for`` on ``clock``'s time: ``TimeoutError`` once ``timeout`` seconds of it pass."""
    if isinstance(clock, SystemClock):
        return await asyncio.wait_for(awaitable, timeout)
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(_timer(clock, timeout))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        raise
    finally:
        timer.cancel()
    if not work.done():
        work.cancel()
        raise TimeoutError(f"no result within {timeout} s")
    return work.result()


async def wait_first(clock: Clock, futures: set[asyncio.Future[T]], timeout: float | None) -> set[asyncio.Future[T]]:
    """``asyncio.wait(futures, timeout=..., return_when=FIRST_COMPLETED)`` on ``clock``'s time: the done ones,
    an empty set when ``timeout`` seconds of it passed first."""
    if timeout is None or isinstance(clock, SystemClock):
        done, _ = await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return done
    timer = asyncio.ensure_future(_timer(clock, timeout))
    try:
        waited: set[asyncio.Future[Any]] = {*futures, timer}
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return {future for future in futures if future.done()}


def _timer(clock: Clock, timeout: float) -> Awaitable[None]:
    """A timeout timer to run as its own task; on a manual clock the waiting task counts as parked meanwhile."""
    if isinstance(clock, ManualClock):
        return clock.sleep(timeout, owner=asyncio.current_task())
    return clock.sleep(timeout)


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
