"""Per-segment traffic rates as Pravega's segment store keeps them (``SegmentAggregates``).

A ``SegmentAggregate`` counts what arrived since the last tick (bytes for scale type 1, events for scale
type 2) and, on each tick, folds the instant rate into exponentially decaying averages over four windows
(default 2, 5, 10 and 20 minutes) with ``alpha = 1 - exp(-tick / window)`` (Pravega: ``1 - exp(-5 s / w)``);
a rate still at 0 starts at the first instant rate, as in Pravega, unless the segment was seeded with its share
of the rates of the segments it replaced (``seed``). Ticks without traffic decay the rates
toward 0. Rates are in KiB/s (scale type 1) or events/s (scale type 2). ``record`` is O(1) and
allocation-free: it sits on the append path and is called once per append block. A merged transaction that
lived longer than a tick is amortised as Pravega does: it counts ``tick / lifetime`` of its traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from anabranch.errors import ConfigError

SCALE_NONE = 0
SCALE_BY_KIB = 1
SCALE_BY_EVENTS = 2
_IDLE_RATE = 1e-9


@dataclass(frozen=True, slots=True)
class AutoScaleConfig:
    """Timing of the segment-store side of auto-scaling (seconds). Compress it for demos and tests."""

    tick: float = 5.0
    windows: tuple[float, float, float, float] = (120.0, 300.0, 600.0, 1200.0)
    cooldown: float = 600.0
    mute: float = 600.0
    report_interval: float = 120.0
    idle_expiry: float = 1200.0
    split_margin: float = 1.2
    """Hysteresis of the 10-minute rule: UP once r10 exceeds the target by this factor (Pravega: 1.0), so a
    segment the last split left at its target does not split again on noise."""

    def __post_init__(self) -> None:
        if self.tick <= 0 or any(w <= 0 for w in self.windows) or len(self.windows) != 4:
            raise ConfigError(f"auto-scale tick and the four windows must be positive, got {self}")
        if self.split_margin < 1.0:
            raise ConfigError(f"auto-scale split margin must be >= 1.0, got {self.split_margin}")
        if min(self.cooldown, self.mute, self.report_interval, self.idle_expiry) < 0:
            raise ConfigError(f"auto-scale cool-down, mute, report interval and expiry must be >= 0, got {self}")

    @classmethod
    def compressed(cls, factor: float) -> AutoScaleConfig:
        """Pravega's defaults with every duration divided by ``factor`` (a demo with factor 60 runs in seconds)."""
        base = cls()
        return cls(base.tick / factor, (base.windows[0] / factor, base.windows[1] / factor,
                                        base.windows[2] / factor, base.windows[3] / factor),
                   base.cooldown / factor, base.mute / factor, base.report_interval / factor,
                   base.idle_expiry / factor, base.split_margin)


class SegmentAggregate:
    """Decaying traffic rates of one segment with a rate-based scaling policy."""

    __slots__ = ("alphas", "by_bytes", "last_report", "last_tick", "pending", "rates", "start_time", "target_rate",
                 "tick_length", "traffic")

    def __init__(self, scale_type: int, target_rate: int, now: float, config: AutoScaleConfig) -> None:
        self.by_bytes = scale_type == SCALE_BY_KIB
        self.target_rate = target_rate
        self.tick_length = config.tick
        self.alphas = tuple(1.0 - math.exp(-config.tick / window) for window in config.windows)
        self.start_time = now
        self.last_tick = now
        self.last_report = now
        self.pending = 0.0
        self.traffic = False
        self.rates = [0.0, 0.0, 0.0, 0.0]

    def set_policy(self, scale_type: int, target_rate: int) -> None:
        self.by_bytes = scale_type == SCALE_BY_KIB
        self.target_rate = target_rate

    def seed(self, rates: list[float], share: float) -> None:
        """Start from ``share`` of a sealed predecessor's rates (added: a merge has several predecessors), so a
        new segment neither waits for its own history nor takes one burst as its rate."""
        for i, rate in enumerate(rates):
            self.rates[i] += rate * share

    def record(self, nbytes: float, events: float) -> None:
        self.pending += nbytes if self.by_bytes else events
        self.traffic = True

    def record_merge(self, nbytes: int, events: int, txn_age: float) -> None:
        """A transaction's traffic: a short one counts as is, a longer one by its average over one tick."""
        if txn_age < self.tick_length:
            self.record(nbytes, events)
        else:
            share = self.tick_length / txn_age
            self.record(nbytes * share, events * share)

    def tick(self, now: float) -> bool:
        """Fold the traffic since the last tick into the rates; True if there was any.

        A late tick first decays the rates over the silent tick intervals it covers, then folds the count in
        over the remaining time; a rate still at exactly 0 starts at the instant rate.
        """
        elapsed = now - self.last_tick
        if elapsed <= 0:
            return False
        self.last_tick = now
        count, self.pending = self.pending, 0.0
        traffic, self.traffic = self.traffic, False
        rates = self.rates
        if count == 0 and max(rates) < _IDLE_RATE:
            return traffic
        silent = max(int(elapsed / self.tick_length) - 1, 0)
        for _ in range(silent):
            self._decay(0.0, self.tick_length)
        self._decay(count / 1024 if self.by_bytes else count, elapsed - silent * self.tick_length)
        return traffic

    def _decay(self, amount: float, duration: float) -> None:
        instant = amount / duration
        rates = self.rates
        for i, alpha in enumerate(self.alphas):
            rates[i] = instant if rates[i] == 0 else rates[i] + alpha * (instant - rates[i])
