"""A stream's configuration: how it scales, how much it retains, its tags. One definition for the client and
the Controller API conversions (``anabranch.protocol.controller_messages``).

All values are frozen; the policies validate themselves the way Pravega's builders do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from anabranch.errors import ConfigError


class ScaleType(enum.IntEnum):
    """Numbers as in the controller API's ``ScalingPolicyType``."""

    FIXED_NUM_SEGMENTS = 0
    BY_RATE_IN_KBYTES_PER_SEC = 1
    BY_RATE_IN_EVENTS_PER_SEC = 2


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """How many segments a stream has and when it scales. Build with ``fixed``/``by_event_rate``/``by_data_rate``."""

    scale_type: ScaleType = ScaleType.FIXED_NUM_SEGMENTS
    target_rate: int = 0
    scale_factor: int = 0
    min_num_segments: int = 1

    def __post_init__(self) -> None:
        if self.min_num_segments <= 0:
            raise ConfigError("a stream needs at least one segment (min_num_segments > 0)")
        if self.scale_type != ScaleType.FIXED_NUM_SEGMENTS and (self.target_rate <= 0 or self.scale_factor <= 0):
            raise ConfigError("rate-based scaling needs target_rate > 0 and scale_factor > 0")

    @classmethod
    def fixed(cls, segments: int) -> ScalingPolicy:
        return cls(ScaleType.FIXED_NUM_SEGMENTS, 0, 0, segments)

    @classmethod
    def by_event_rate(cls, events_per_second: int, scale_factor: int, min_segments: int) -> ScalingPolicy:
        return cls(ScaleType.BY_RATE_IN_EVENTS_PER_SEC, events_per_second, scale_factor, min_segments)

    @classmethod
    def by_data_rate(cls, kbytes_per_second: int, scale_factor: int, min_segments: int) -> ScalingPolicy:
        return cls(ScaleType.BY_RATE_IN_KBYTES_PER_SEC, kbytes_per_second, scale_factor, min_segments)


class RetentionType(enum.IntEnum):
    NONE = 0
    TIME = 1
    SIZE = 2


UNBOUNDED = 2**63 - 1


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How much data a stream keeps: ``by_time(ms)``, ``by_size(bytes)`` or ``none()``."""

    retention_type: RetentionType = RetentionType.NONE
    retention_param: int = 0
    retention_max: int = UNBOUNDED

    def __post_init__(self) -> None:
        if self.retention_type != RetentionType.NONE and self.retention_param < 0:
            raise ConfigError("retention needs a non-negative limit")

    @classmethod
    def none(cls) -> RetentionPolicy:
        return cls()

    @classmethod
    def by_time(cls, millis: int, max_millis: int = UNBOUNDED) -> RetentionPolicy:
        return cls(RetentionType.TIME, millis, max_millis)

    @classmethod
    def by_size(cls, size_bytes: int, max_bytes: int = UNBOUNDED) -> RetentionPolicy:
        return cls(RetentionType.SIZE, size_bytes, max_bytes)


@dataclass(frozen=True, slots=True)
class StreamConfiguration:
    """What a stream is created or updated with."""

    scaling: ScalingPolicy = field(default_factory=lambda: ScalingPolicy.fixed(1))
    retention: RetentionPolicy = field(default_factory=RetentionPolicy.none)
    tags: tuple[str, ...] = ()
    timestamp_aggregation_timeout_ms: int = 0
    rollover_size_bytes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(self.tags))
        if len(self.tags) >= 128 or any(len(t) >= 256 for t in self.tags):
            raise ConfigError("a stream has fewer than 128 tags, each shorter than 256 characters")
        if self.rollover_size_bytes < 0:
            raise ConfigError("rollover_size_bytes must not be negative")
