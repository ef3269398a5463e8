"""What a reader group reads and where its readers are: ``ReaderGroupConfig``, ``Position``, and stream cuts
from positions. Plain values, shared by ``reader_group`` and ``event_reader`` (neither imports the other's
module at run time for them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anabranch.client.errors import ClientError
from anabranch.model.names import ScopedSegment
from anabranch.model.stream_cut import StreamCut

RETENTION_NONE, RETENTION_MANUAL, RETENTION_AUTOMATIC = "none", "manual", "automatic"
_RETENTION_TYPES = {RETENTION_NONE: 0, RETENTION_MANUAL: 1, RETENTION_AUTOMATIC: 2}
"""Retention mode → the ``retentionType`` ordinal of the Controller API."""
@dataclass(frozen=True)
class ReaderGroupConfig:
    """Which streams a group reads and between which cuts (an unbounded starting cut = the head)."""

    starting_cuts: tuple[StreamCut, ...]
    ending_cuts: tuple[StreamCut, ...] = ()
    read_from_tail: bool = False
    group_refresh_time: float = 3.0
    """Seconds between a reader's syncs with the group (rebalancing, position updates)."""
    automatic_checkpoint_interval: float | None = None
    """Seconds between automatic (silent) checkpoints; None disables them."""
    retention: str = RETENTION_NONE
    """Consumption-based retention (Pravega's ``StreamDataRetention``): ``"none"``; ``"manual"`` — the group is a
    subscriber of its streams and retention never truncates past the cut acknowledged with
    ``ReaderGroup.update_retention_stream_cut``; ``"automatic"`` — the same, acknowledged at every completed
    checkpoint."""
    reader_lease: float | None = None
    """Seconds a reader may go without syncing with the group before another reader takes it offline (its segments
    go back at the positions it last reported, so events after them are read again); None: never, as in Pravega,
    where the application calls ``reader_offline`` for a reader that died."""

    def __post_init__(self) -> None:
        if self.retention not in _RETENTION_TYPES:
            raise ClientError(f"reader-group retention must be one of {sorted(_RETENTION_TYPES)}, "
                              f"not {self.retention!r}")

    @classmethod
    def for_streams(cls, scope: str, *streams: str, **options: Any) -> ReaderGroupConfig:
        """Read ``streams`` of ``scope`` from their heads (or tails with ``read_from_tail=True``)."""
        if not streams:
            raise ClientError("a reader group needs at least one stream")
        return cls(tuple(StreamCut.unbounded(scope, s) for s in streams), **options)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": [_cut_out(c) for c in self.starting_cuts],
            "end": [_cut_out(c) for c in self.ending_cuts],
            "tail": self.read_from_tail,
            "refresh": self.group_refresh_time,
            "auto_cp": self.automatic_checkpoint_interval,
            "retention": self.retention,
            "lease": self.reader_lease,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReaderGroupConfig:
        return cls(tuple(_cut_in(c) for c in data["start"]), tuple(_cut_in(c) for c in data["end"]),
                   data["tail"], data["refresh"], data["auto_cp"], data.get("retention", RETENTION_NONE),
                   data.get("lease"))


class Position:
    """Where one reader is: the offset after the last event it returned, per segment it holds.

    Readers hand one out with every event, so it is built lazily: a snapshot of the other segments' offsets
    (shared by the events of a block) plus the one segment that moved; ``offsets`` merges them on first use.
    """

    __slots__ = ("_base", "_merged", "_offset", "_segment")

    def __init__(self, offsets: Mapping[ScopedSegment, int] | None = None, segment: ScopedSegment | None = None,
                 offset: int = -1) -> None:
        self._base: Mapping[ScopedSegment, int] = offsets if offsets is not None else {}
        self._segment = segment
        self._offset = offset
        self._merged: dict[ScopedSegment, int] | None = None

    @property
    def offsets(self) -> Mapping[ScopedSegment, int]:
        if self._merged is None:
            merged = dict(self._base)
            if self._segment is not None:
                merged[self._segment] = self._offset
            self._merged = merged
        return self._merged

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Position) and dict(self.offsets) == dict(other.offsets)

    def __hash__(self) -> int:
        return hash(frozenset(self.offsets.items()))

    def __repr__(self) -> str:
        return f"Position({dict(self.offsets)!r})"


def _cut_out(cut: StreamCut) -> dict[str, Any]:
    return {"scope": cut.scope, "stream": cut.stream, "positions": dict(cut.positions)}


def _cut_in(data: Mapping[str, Any]) -> StreamCut:
    return StreamCut(data["scope"], data["stream"], {int(k): int(v) for k, v in data["positions"].items()})


def stream_cuts(positions: Mapping[ScopedSegment, int]) -> dict[tuple[str, str], StreamCut]:
    """Group segment positions into one stream cut per (scope, stream)."""
    grouped: dict[tuple[str, str], dict[int, int]] = {}
    for segment, offset in positions.items():
        grouped.setdefault((segment.scope, segment.stream), {})[segment.segment_id] = offset
    return {key: StreamCut(key[0], key[1], cut) for key, cut in grouped.items()}
