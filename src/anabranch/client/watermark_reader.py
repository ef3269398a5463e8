"""Readers' time windows: following a stream's watermarks (``_MARK<stream>``) against the group's position.

The controller appends one watermark per round to the single segment of ``<scope>/_MARK<stream>``: a Pravega
event whose payload is UTF-8 JSON ``{"lowerTimeBound": ms, "upperTimeBound": ms, "streamCut": [[segmentId,
keyStart, keyEnd, offset], ...]}``. Successive watermarks have increasing times and cuts that never move back.

Pure part (as Pravega's ``WatermarkReaderImpl``):
- ``compare(position, watermark)`` orders a reader-group position against a watermark's cut: every position
  segment is compared with each cut segment whose key range overlaps it, by (segment id, offset); the position
  is after the cut (1) if it is after on some overlap and before on none, before it (-1) in the mirror case,
  and 0 when equal or mixed. (Pravega compares with one overlapping cut segment picked from a hash map; all of
  them gives the same answer whenever that choice does not matter, and a defined one when it does.)
- ``WindowTracker`` keeps the watermarks not yet passed (``inflight``: up to the first one strictly after the
  position) and the lower time bound of the newest passed one (the position is after its cut). The window's
  lower bound is that time; its upper bound is the upper time bound of the first watermark whose cut is at or
  after the position on every segment. Unknown bounds are None. (Pravega reports the last watermark in flight
  even when the position is past its cut on some segment; that bound would not cover what was read there.)
  Fetched watermarks are consumed lazily: only while no watermark strictly after the position is known.

I/O part: ``WatermarkReader`` follows one stream's mark segment (reading, when the tracker wants more, up to the
segment's current length, one block at a time) and learns segment key ranges from watermarks and, for segments
no watermark named, from the controller (one ``getEpochSegments`` per epoch). ``ReaderWatermarks`` holds one
per stream a reader was asked about; the ``EventStreamReader`` advances it at each sync with the group (per
block of events, never per event) with the group's positions; a failure there is logged and leaves the window
as it was.

Invariants: with a position that only moves forward, the lower bound never decreases and a known upper bound
only moves to later watermarks; every time noted before the position is at most the upper bound, every time
noted after it at least the lower bound (for writers that flush before noting); a watermark is decoded once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from anabranch.client.errors import ClientError, error_from_reply
from anabranch.client.hashing import SegmentWithRange
from anabranch.client.segment_reader import SegmentReader, SegmentRouter
from anabranch.errors import ConnectionFailedError, DataCorruptionError
from anabranch.model.names import ScopedSegment, mark_stream_name, segment_epoch
from anabranch.protocol.commands import GetStreamSegmentInfo, StreamSegmentInfo

log = logging.getLogger(__name__)

ADVANCE_TIMEOUT = 10.0
"""Seconds one advance (reading new watermarks, looking up ranges) may take before it is given up."""

CutEntry = tuple[int, float, float, int]
"""(segment id, key start, key end, offset)."""

ReaderPosition = Mapping[int, tuple[float, float, int]]
"""segment id → (key start, key end, offset): where a reader group is in one stream."""


class StreamNotInReaderGroupError(ClientError, ValueError):
    """A time window was asked for a stream the reader's group does not read: pass one of the group's streams."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Bounds on the times writers noted (``note_time``) around a reader's position, in their units (ms).

    The lower bound is at most the time any writer noted at the current position; the upper bound is at least
    any time noted before it. None when no watermark bounds that side: near the head of the stream (lower) or
    near its tail (upper).
    """

    lower_time_bound: int | None
    upper_time_bound: int | None

    @property
    def is_near_head_of_stream(self) -> bool:
        return self.lower_time_bound is None

    @property
    def is_near_tail_of_stream(self) -> bool:
        return self.upper_time_bound is None


UNKNOWN_WINDOW = TimeWindow(None, None)


@dataclass(frozen=True, slots=True)
class Watermark:
    """One watermark as a reader sees it (the controller's stored form, decoded)."""

    lower_time_bound: int
    upper_time_bound: int
    stream_cut: tuple[CutEntry, ...]

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> Watermark:
        try:
            obj = json.loads(bytes(payload))
            cut = tuple((int(s), float(lo), float(hi), int(o)) for s, lo, hi, o in obj["streamCut"])
            return cls(int(obj["lowerTimeBound"]), int(obj["upperTimeBound"]), cut)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataCorruptionError(f"malformed watermark {bytes(payload)[:200]!r}: {exc}") from exc


def _order(position: ReaderPosition, watermark: Watermark) -> tuple[bool, bool]:
    """Whether ``position`` is after the watermark's cut on some overlap, and whether it is before on some."""
    above = below = False
    for seg_id, (start, end, offset) in position.items():
        for cut_id, cut_start, cut_end, cut_offset in watermark.stream_cut:
            if cut_start >= end or start >= cut_end:
                continue
            if (seg_id, offset) > (cut_id, cut_offset):
                above = True
            elif (seg_id, offset) < (cut_id, cut_offset):
                below = True
    return above, below


def compare(position: ReaderPosition, watermark: Watermark) -> int:
    """1 if ``position`` is after the watermark's cut, -1 if before, 0 if equal or neither."""
    above, below = _order(position, watermark)
    if above == below:
        return 0
    return 1 if above else -1


class WindowTracker:
    """The time window of a position that only moves forward, over watermarks fed in stream order."""

    def __init__(self) -> None:
        self.inflight: collections.deque[Watermark] = collections.deque()
        self.fetched: collections.deque[Watermark] = collections.deque()
        """Watermarks read from the mark stream but not yet compared with a position."""
        self.passed: int | None = None
        self.upper: int | None = None

    @property
    def window(self) -> TimeWindow:
        return TimeWindow(self.passed, self.upper)

    def feed(self, watermarks: Iterable[Watermark]) -> None:
        self.fetched.extend(watermarks)

    def advance(self, position: ReaderPosition) -> bool:
        """Moves to ``position``; True if it ran out of fetched watermarks before finding one after it."""
        while self.inflight and compare(position, self.inflight[0]) > 0:
            self.passed = self.inflight.popleft().lower_time_bound
        wants_more = False
        while not self.inflight or compare(position, self.inflight[-1]) >= 0:
            if not self.fetched:
                wants_more = True
                break
            mark = self.fetched.popleft()
            if compare(position, mark) <= 0:
                self.inflight.append(mark)
            else:
                self.passed = mark.lower_time_bound
        self.upper = next((m.upper_time_bound for m in self.inflight if not _order(position, m)[0]), None)
        return wants_more


class SegmentRanges(Protocol):
    """What ``WatermarkReader`` needs of the controller client."""

    async def get_current_segments(self, scope: str, stream: str) -> list[SegmentWithRange]: ...

    async def get_epoch_segments(self, scope: str, stream: str, epoch: int) -> list[SegmentWithRange]: ...


class WatermarkReader:
    """Follows the watermarks of ``scope/stream`` for one reader."""

    def __init__(self, scope: str, stream: str, controller: SegmentRanges, router: SegmentRouter) -> None:
        self.scope = scope
        self.stream = stream
        self.controller = controller
        self.router = router
        self.tracker = WindowTracker()
        self.ranges: dict[int, tuple[float, float]] = {}
        self._mark_segment: str | None = None
        self._offset = 0
        """Where the next unread watermark starts in the mark segment."""

    @property
    def time_window(self) -> TimeWindow:
        return self.tracker.window

    async def advance(self, offsets: Mapping[int, int]) -> None:
        """Moves the window to the group's ``offsets`` in this stream (segment id → offset)."""
        if not offsets:
            return
        position = await self._with_ranges(offsets)
        while self.tracker.advance(position):
            fetched = await self._fetch()
            if not fetched:
                return
            self.tracker.feed(fetched)

    async def _with_ranges(self, offsets: Mapping[int, int]) -> dict[int, tuple[float, float, int]]:
        for epoch in sorted({segment_epoch(s) for s in offsets if s not in self.ranges}):
            for seg in await self.controller.get_epoch_segments(self.scope, self.stream, epoch):
                self.ranges[seg.segment_id] = (seg.min_key, seg.max_key)
        position = {}
        for seg_id, offset in offsets.items():
            known = self.ranges.get(seg_id)
            if known is None:
                log.warning("segment %d of %s/%s has no known key range; leaving it out of the time window",
                            seg_id, self.scope, self.stream)
                continue
            position[seg_id] = (known[0], known[1], offset)
        return position

    async def _segment(self) -> str:
        if self._mark_segment is None:
            segments = await self.controller.get_current_segments(self.scope, mark_stream_name(self.stream))
            if len(segments) != 1:
                raise DataCorruptionError(f"the mark stream of {self.scope}/{self.stream} has {len(segments)} "
                                          "active segments instead of one")
            self._mark_segment = segments[0].qualified_name
        return self._mark_segment

    async def _fetch(self) -> list[Watermark]:
        """Every watermark appended since the last fetch (up to the mark segment's length now)."""
        segment = await self._segment()
        reply = await self.router.request(
            segment, lambda rid: GetStreamSegmentInfo(rid, segment, self.router.delegation_token))
        if not isinstance(reply, StreamSegmentInfo):
            raise error_from_reply(reply, f"reading the length of {segment}")
        if reply.write_offset <= self._offset:
            return []
        reader = SegmentReader(self.router, segment, self._offset, reply.write_offset)
        marks: list[Watermark] = []
        try:
            while not reader.at_end:
                block = await reader.read_block()
                for payload in block.events:
                    try:
                        marks.append(Watermark.decode(payload))
                    except DataCorruptionError as exc:
                        log.warning("skipping a watermark of %s/%s: %s", self.scope, self.stream, exc)
        finally:
            await reader.close()
        self._offset = reader.offset
        for mark in marks:
            for seg_id, start, end, _offset in mark.stream_cut:
                self.ranges.setdefault(seg_id, (start, end))
        return marks


class ReaderWatermarks:
    """The watermark readers of one ``EventStreamReader``: one per stream it was asked the time window of."""

    def __init__(self, streams: Iterable[tuple[str, str]], controller: SegmentRanges, router: SegmentRouter,
                 *, timeout: float = ADVANCE_TIMEOUT) -> None:
        self.streams = frozenset(streams)
        self.controller = controller
        self.router = router
        self.timeout = timeout
        self.readers: dict[tuple[str, str], WatermarkReader] = {}

    def time_window(self, scope: str, stream: str) -> tuple[TimeWindow, bool]:
        """The window of ``scope/stream`` and whether the stream was just added (its window is not known yet)."""
        key = (scope, stream)
        reader = self.readers.get(key)
        if reader is not None:
            return reader.time_window, False
        if key not in self.streams:
            raise StreamNotInReaderGroupError(f"the reader group does not read {scope}/{stream}; it reads "
                                         f"{', '.join(sorted(f'{s}/{t}' for s, t in self.streams))}")
        self.readers[key] = WatermarkReader(scope, stream, self.controller, self.router)
        return UNKNOWN_WINDOW, True

    async def advance(self, positions: Mapping[ScopedSegment, int]) -> None:
        """Moves every followed stream's window to the group's ``positions``; failures are logged."""
        if not self.readers:
            return
        per_stream: dict[tuple[str, str], dict[int, int]] = {key: {} for key in self.readers}
        for segment, offset in positions.items():
            offsets = per_stream.get((segment.scope, segment.stream))
            if offsets is not None and offset >= 0:
                offsets[segment.segment_id] = offset
        for key, reader in self.readers.items():
            try:
                async with asyncio.timeout(self.timeout):
                    await reader.advance(per_stream[key])
            except (ClientError, ConnectionFailedError, DataCorruptionError, OSError, TimeoutError) as exc:
                log.warning("time window of %s/%s not updated: %s", key[0], key[1], exc)
