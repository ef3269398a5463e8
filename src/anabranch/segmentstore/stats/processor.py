"""The auto-scale decision of the segment store (Pravega's ``AutoScaleProcessor``).

``decide`` is the pure rule (spec §5.1), with Pravega's thresholds scaled to the configured windows
(w2, w5, w10, w20 stand for the 2/5/10/20-minute windows):
- nothing until the aggregate is older than the cool-down;
- UP if r2 > 5 * target (age > w2), r5 > 2 * target (age > w5) or r10 > target (age > w10), asking for
  ``max(2, floor(max(r2, r5, r10) / target))`` splits;
- DOWN if r2, r5 and r10 are below target, r20 below target/2, and age > w20.
``AutoScaleProcessor`` adds the state: an UP mutes both directions and a DOWN mutes further DOWNs for
``mute`` seconds; a segment that sent no report for ``idle_expiry`` seconds gets a silent DOWN and is forgotten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from anabranch.model.names import ScopedSegment
from anabranch.segmentstore.stats.aggregates import AutoScaleConfig
from anabranch.segmentstore.stats.requests import ScaleDirection, ScaleRequest


def decide(config: AutoScaleConfig, target: float, age: float, r2: float, r5: float, r10: float,
           r20: float) -> tuple[ScaleDirection, int] | None:
    """(direction, number of splits) for one report, or None."""
    if target <= 0 or age <= config.cooldown:
        return None
    w2, w5, w10, w20 = config.windows
    if (r2 > 5 * target and age > w2) or (r5 > 2 * target and age > w5) or (r10 > target and age > w10):
        return ScaleDirection.UP, max(2, math.floor(max(r2, r5, r10) / target))
    if r2 < target and r5 < target and r10 < target and r20 < target / 2 and age > w20:
        return ScaleDirection.DOWN, 0
    return None


@dataclass(slots=True)
class _Entry:
    last_report: float
    up_muted_until: float = -math.inf
    down_muted_until: float = -math.inf


class AutoScaleProcessor:
    """Turns reports into ``ScaleRequest``s, applying mute and idle expiry."""

    def __init__(self, config: AutoScaleConfig) -> None:
        self.config = config
        self._entries: dict[str, _Entry] = {}

    def report(self, segment: str, target: float, start_time: float, rates: list[float], now: float,
               wall_ms: int) -> ScaleRequest | None:
        entry = self._entries.get(segment)
        if entry is None:
            entry = self._entries[segment] = _Entry(now)
        entry.last_report = now
        decision = decide(self.config, target, now - start_time, *rates)
        if decision is None:
            return None
        direction, splits = decision
        if direction is ScaleDirection.UP:
            if now < entry.up_muted_until:
                return None
            entry.up_muted_until = entry.down_muted_until = now + self.config.mute
        else:
            if now < entry.down_muted_until:
                return None
            entry.down_muted_until = now + self.config.mute
        return _request(segment, direction, splits, False, wall_ms)

    def expire(self, now: float, wall_ms: int) -> list[ScaleRequest]:
        """Silent DOWNs for segments without a report for ``idle_expiry`` seconds (which are forgotten)."""
        limit = now - self.config.idle_expiry
        idle = [name for name, entry in self._entries.items() if entry.last_report <= limit]
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
