"""The auto-scale decision of the segment store (Pravega's ``AutoScaleProcessor``).

``decide`` is the pure rule (spec §5.1), with Pravega's thresholds scaled to the configured windows
(w2, w5, w10, w20 stand for the 2/5/10/20-minute windows):
- nothing until the aggregate is older than the cool-down;
- UP if r2 > 5 * target (age > w2), r5 > 2 * target (age > w5) or r10 > target * split_margin (age > w10;
  Pravega has no margin: a hysteresis), asking for ``max(2, ceil(max(r2, r5, r10) / target - SPLIT_TOLERANCE))``
  splits: the segments the rate needs (Pravega's floor under-asks, so its splits cascade past the need);
- DOWN if r2, r5 and r10 are below target, r20 below target/2, and age > w20.
``AutoScaleProcessor`` adds the state (mute, idle expiry): see its docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from anabranch.model.names import ScopedSegment
from anabranch.segmentstore.stats.aggregates import AutoScaleConfig
from anabranch.segmentstore.stats.requests import ScaleDirection, ScaleRequest

SPLIT_TOLERANCE = 0.1
"""A rate up to this fraction of one target above a multiple of it does not ask for one more segment: the
segments a scale creates see the events their writers held back during the scale, a small lasting bump."""


def decide(config: AutoScaleConfig, target: float, age: float, r2: float, r5: float, r10: float,
           r20: float) -> tuple[ScaleDirection, int] | None:
    """(direction, number of splits) for one report, or None."""
    if target <= 0 or age <= config.cooldown:
        return None
    w2, w5, w10, w20 = config.windows
    if ((r2 > 5 * target and age > w2) or (r5 > 2 * target and age > w5)
            or (r10 > target * config.split_margin and age > w10)):
        return ScaleDirection.UP, max(2, math.ceil(max(r2, r5, r10) / target - SPLIT_TOLERANCE))
    if r2 < target and r5 < target and r10 < target and r20 < target / 2 and age > w20:
        return ScaleDirection.DOWN, 0
    return None


@dataclass(slots=True)
class _Entry:
    last_access: float
    last_up: float = -math.inf
    last_down: float = -math.inf


class AutoScaleProcessor:
    """Turns reports into ``ScaleRequest``s, applying mute and idle expiry (Pravega's request cache).

    A segment enters the cache when it is created here (muted in both directions for ``mute`` seconds) or when
    a request is sent for it; a report or a request refreshes it. An UP mutes both directions; a non-silent
    DOWN mutes DOWNs and lifts the UP mute. A segment idle in the cache for ``idle_expiry`` seconds leaves it
    with a silent DOWN (not subject to mute); a sealed one leaves without a request.
    """

    def __init__(self, config: AutoScaleConfig) -> None:
        self.config = config
        self._entries: dict[str, _Entry] = {}

    def notify_created(self, segment: str, now: float) -> None:
        self._entries[segment] = _Entry(now, now, now)

    def report(self, segment: str, target: float, start_time: float, rates: list[float], now: float,
               wall_ms: int) -> ScaleRequest | None:
        entry = self._entries.get(segment)
        if entry is not None:
            entry.last_access = now
        decision = decide(self.config, target, now - start_time, *rates)
        if decision is None:
            return None
        direction, splits = decision
        last = entry or _Entry(now)
        if direction is ScaleDirection.UP:
            if now - last.last_up <= self.config.mute:
                return None
            self._entries[segment] = _Entry(now, now, now)
        else:
            if now - last.last_down <= self.config.mute:
                return None
            self._entries[segment] = _Entry(now, -math.inf, now)
        return _request(segment, direction, splits, False, wall_ms)

    def expire(self, now: float, wall_ms: int) -> list[ScaleRequest]:
        """Silent DOWNs for the segments idle in the cache for ``idle_expiry`` seconds (which leave it)."""
        limit = now - self.config.idle_expiry
        idle = [name for name, entry in self._entries.items() if entry.last_access <= limit]
        for name in idle:
            del self._entries[name]
        return [_request(name, ScaleDirection.DOWN, 0, True, wall_ms) for name in idle]

    def forget(self, segment: str) -> None:
        self._entries.pop(segment, None)

    def __contains__(self, segment: str) -> bool:
        return segment in self._entries


def _request(segment: str, direction: ScaleDirection, splits: int, silent: bool, wall_ms: int) -> ScaleRequest:
    parsed = ScopedSegment.parse(segment)
    return ScaleRequest(parsed.scope, parsed.stream, parsed.segment_id, direction, splits, silent, wall_ms)
