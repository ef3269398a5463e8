"""One retry policy for every component that retries: exponential backoff with jitter and an overall budget.

A ``RetryPolicy`` is a frozen value (``ClientConfig.retry_policy`` builds the client's; the controller's
segment-store client has its own). ``policy.start()`` gives a ``Backoff`` for one operation: after each
failed attempt, ``await backoff.wait()`` sleeps the next delay and returns True, or returns False (without
sleeping) once the attempt cap is reached or the budget (seconds since ``start()``) is spent. Delays grow
from ``initial_delay`` by ``multiplier`` up to ``max_delay``; each is drawn uniformly from
``[delay * (1 - jitter), delay]`` so clients that lost the same server do not come back in lock step, and
never sleeps past the budget's end. Delays and the budget run on the policy's ``clock`` (the system clock unless
a test injects a ``ManualClock``).

Typical use::

    backoff = policy.start()
    while True:
        try:
            return await attempt()
        except SomeRetriableError as exc:
            last = exc
        if not await backoff.wait():
            raise UnavailableError(f"... gave up after {backoff.describe()}: {last}")
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from anabranch.clock import SYSTEM_CLOCK, Clock
from anabranch.errors import ConfigError

DEFAULT_BUDGET = 180.0
"""Seconds an operation keeps retrying by default (Pravega's writer also retries for minutes)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a time budget and optionally by a number of attempts."""

    initial_delay: float = 0.05
    multiplier: float = 2.0
    max_delay: float = 2.0
    budget: float = DEFAULT_BUDGET
    max_attempts: int | None = None
    jitter: float = 0.5
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False, repr=False)
    """Whose time the delays and the budget are measured in (a ``ManualClock`` in tests)."""

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ConfigError("retry delays: need 0 <= initial_delay <= max_delay")
        if self.multiplier < 1:
            raise ConfigError("retry multiplier must be at least 1")
        if self.budget < 0:
            raise ConfigError("retry budget must not be negative")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError("retry max_attempts must be at least 1 (or None for no cap)")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("retry jitter must be within 0..1")

    def start(self) -> Backoff:
        return Backoff(self)

    def delay(self, retry: int) -> float:
        """The un-jittered delay before retry number ``retry`` (0-based)."""
        return min(self.max_delay, self.initial_delay * self.multiplier ** min(retry, 64))


class Backoff:
    """The retry state of one operation; see the module docstring."""

    __slots__ = ("attempts", "policy", "started")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = policy.clock.monotonic()
        self.attempts = 0

    @property
    def elapsed(self) -> float:
        return self.policy.clock.monotonic() - self.started

    @property
    def remaining(self) -> float:
        return max(0.0, self.policy.budget - self.elapsed)

    def next_delay(self) -> float | None:
        """Counts one failed attempt; the seconds to sleep before the next one, or None when giving up."""
        self.attempts += 1
        policy = self.policy
        if policy.max_attempts is not None and self.attempts >= policy.max_attempts:
            return None
        remaining = self.remaining
        if remaining <= 0:
            return None
        base = policy.delay(self.attempts - 1)
        return min(remaining, base * (1 - policy.jitter * random.random()))

    async def wait(self) -> bool:
        """After a failed attempt: sleep and return True, or return False when the budget or cap is spent."""
        delay = self.next_delay()
        if delay is None:
            return False
        await self.policy.clock.sleep(delay)
        return True

    def describe(self) -> str:
        return f"{self.attempts} attempts in {self.elapsed:.1f} s"
