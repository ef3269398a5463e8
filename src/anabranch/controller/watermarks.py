"""Watermarks (Pravega's ``PeriodicWatermarking``): from writers' marks to time/position bounds in ``_MARK<stream>``.

Pure part:
- ``upper_bound`` folds writers' positions into the least upper bound: the highest offset per segment, and a
  segment is dropped once one of its successors (an overlapping segment with a higher id) is included;
- ``complete_cut`` superimposes the previous watermark's cut, then fills key ranges nobody covers with the
  segments of the highest epoch included, at offset 0, until the cut covers [0, 1);
- ``compute_watermark``: lower time bound = the lowest time among the participating writers, upper time
  bound = the highest, position = the completed upper bound; nothing when time did not advance past the
  previous watermark;
- ``WatermarkWindow`` decides which writers count: a writer is *active* if its time is after the watermark
  at the start of the window (the last two watermarks), and *participating* if its time is after the latest
  one. A watermark is emitted only when every active writer participates; otherwise the window moves on,
  so a silent writer stops holding watermarks back after two rounds.

Stored form: each watermark is one Pravega event (``[i32 0][i32 length][payload]``) appended to the single
segment of ``_MARK<stream>``; the payload is UTF-8 JSON ``{"lowerTimeBound": ms, "upperTimeBound": ms,
"streamCut": [[segmentId, keyStart, keyEnd, offset], ...]}`` (segments sorted by keyStart). Appends are
conditional on the segment's length, so two controllers never interleave watermarks.

I/O part: ``WatermarkJob`` runs every ``period`` seconds over the streams with writer marks: its first round
visits every stream that existed when it started (marks written before a restart), later rounds only the streams
whose writers noted a time since (``ControllerContext.marked_streams``; a stream leaves the set once it has no live
mark), so idle streams cost nothing. The window and the previous watermark live in memory (after a restart the
first round treats every writer as active).
"""

from __future__ import annotations

import json
import logging
import ssl
import struct
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anabranch.clock import Clock, run_periodically
from anabranch.controller.epochs import EpochRecord, SegmentRecord, all_segments
from anabranch.controller.errors import NoSuchSegmentError, StreamNotFoundError
from anabranch.controller.records import StreamState
from anabranch.controller.writers import WRITER_PREFIX
from anabranch.errors import DataCorruptionError
from anabranch.model.keyspace import merge_blocks
from anabranch.model.names import mark_stream_name, qualified_segment_name

if TYPE_CHECKING:
    from anabranch.controller.facade import Controller

log = logging.getLogger(__name__)

WINDOW_SIZE = 2
_EVENT_HEADER = struct.Struct(">ii")

Appender = Callable[[str, bytes, int], Awaitable[bool]]
"""``append(segment, event_bytes, expected_offset)`` → False if the segment's length was not as expected."""


@dataclass(frozen=True, slots=True)
class WriterMark:
    time: int
    position: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class Watermark:
    lower_time_bound: int
    upper_time_bound: int
    stream_cut: tuple[tuple[int, float, float, int], ...]
    """(segment id, key start, key end, offset), sorted by key start."""

    @property
    def positions(self) -> dict[int, int]:
        return {seg_id: offset for seg_id, _, _, offset in self.stream_cut}

    def encode(self) -> bytes:
        return json.dumps({"lowerTimeBound": self.lower_time_bound, "upperTimeBound": self.upper_time_bound,
                           "streamCut": [list(entry) for entry in self.stream_cut]}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Watermark:
        try:
            obj = json.loads(raw)
            cut = tuple((int(s), float(lo), float(hi), int(o)) for s, lo, hi, o in obj["streamCut"])
            return cls(int(obj["lowerTimeBound"]), int(obj["upperTimeBound"]), cut)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataCorruptionError(f"malformed watermark {raw[:200]!r}: {exc}") from exc

    def to_event(self) -> bytes:
        payload = self.encode()
        return _EVENT_HEADER.pack(0, len(payload)) + payload


def upper_bound(positions: Iterable[Mapping[int, int]], segments: Mapping[int, SegmentRecord],
                into: dict[int, int] | None = None) -> dict[int, int]:
    """The least upper bound of writer positions (segment id → offset)."""
    bound = {} if into is None else into
    for position in positions:
        for seg_id, offset in position.items():
            if seg_id in bound:
                bound[seg_id] = max(bound[seg_id], offset)
                continue
            seg = segments[seg_id]
            if any(other > seg_id and seg.overlaps(segments[other]) for other in bound):
                continue
            for other in [o for o in bound if o < seg_id and seg.overlaps(segments[o])]:
                del bound[other]
            bound[seg_id] = offset
    return bound


def _missing(cut: Mapping[int, int], segments: Mapping[int, SegmentRecord]) -> list[tuple[float, float]]:
    covered = merge_blocks([segments[i].range for i in cut])
    gaps, position = [], 0.0
    for start, end in covered:
        if start > position:
            gaps.append((position, start))
        position = max(position, end)
    if position < 1.0:
        gaps.append((position, 1.0))
    return gaps


def complete_cut(bound: Mapping[int, int], segments: Mapping[int, SegmentRecord],
                 epochs: Mapping[int, EpochRecord], previous: Watermark | None) -> dict[int, int]:
    """``bound`` made a complete stream cut at or after ``previous``'s."""
    cut = dict(bound)
    if previous is not None:
        upper_bound([previous.positions], segments, cut)
    for _ in range(len(segments) + 1):
        gaps = _missing(cut, segments)
        if not gaps:
            return cut
        highest = max((segments[i].creation_epoch for i in cut), default=max(epochs))
        fill = {s.id: 0 for s in epochs[highest].segments
                if any(s.key_start < end and s.key_end > start for start, end in gaps)}
        upper_bound([fill], segments, cut)
    raise DataCorruptionError("writer positions cannot be completed into a stream cut")


def compute_watermark(marks: Sequence[WriterMark], previous: Watermark | None,
                      segments: Mapping[int, SegmentRecord], epochs: Mapping[int, EpochRecord]) -> Watermark | None:
    """The next watermark from the participating writers' marks, or None if time did not advance."""
    if not marks:
        return None
    lower = min(m.time for m in marks)
    if previous is not None and lower <= previous.lower_time_bound:
        return None
    cut = complete_cut(upper_bound((m.position for m in marks), segments), segments, epochs, previous)
    entries = sorted(((i, segments[i].key_start, segments[i].key_end, o) for i, o in cut.items()),
                     key=lambda e: e[1])
    return Watermark(lower, max(m.time for m in marks), tuple(entries))


class WatermarkWindow:
    """The emitted watermarks of one stream and the active window over them."""

    def __init__(self) -> None:
        self.emitted: list[Watermark] = []
        self.start: int | None = None

    @property
    def previous(self) -> Watermark | None:
        return self.emitted[-1] if self.emitted else None

    def is_active(self, time: int) -> bool:
        if self.start is None:
            return True
        return time > self.emitted[self.start].lower_time_bound

    def is_participating(self, time: int) -> bool:
        return self.previous is None or time > self.previous.lower_time_bound

    def complete_iteration(self, emitted: Watermark | None) -> None:
        if emitted is not None:
            self.emitted.append(emitted)
            if len(self.emitted) > WINDOW_SIZE:
                self.start = len(self.emitted) - WINDOW_SIZE - 1
        elif self.emitted:
            self.start = 0 if self.start is None else min(self.start + 1, len(self.emitted) - 1)
        if self.start is not None and self.start > 0:
            drop = self.start
            del self.emitted[:drop]
            self.start -= drop

    def next_watermark(self, marks: Sequence[WriterMark], segments: Mapping[int, SegmentRecord],
                       epochs: Mapping[int, EpochRecord]) -> Watermark | None:
        """One round: the watermark to emit (the caller reports back with ``complete_iteration``)."""
        active = [m for m in marks if self.is_active(m.time)]
        if not active or not all(self.is_participating(m.time) for m in active):
            return None
        return compute_watermark(active, self.previous, segments, epochs)


class WireAppender:
    """``Appender`` over the wire protocol: SetupAppend, then one ConditionalAppend per watermark."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None,
                 token: Callable[[], str] = lambda: "",
                 locate: Callable[[str], tuple[str, int] | None] | None = None) -> None:
        self.host = host
        self.port = port
        self.locate = locate
        """In a cluster: the segment store owning a segment's container (None: this fixed ``host:port``)."""
        self.token = token
        """The controller's system token (auth on: the segment store checks it)."""
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.writer_id = uuid.uuid4()

    async def __call__(self, segment: str, event: bytes, expected_offset: int) -> bool:
        from anabranch.client.connection import RawConnection, next_request_id
        from anabranch.protocol import commands as c

        host, port = (self.host, self.port) if self.locate is None else (self.locate(segment) or ("", 0))
        if not host:
            raise NoSuchSegmentError(segment, "cannot append watermarks: its container has no owner right now")
        conn = await RawConnection.connect(host, port, timeout=self.timeout, ssl_context=self.ssl_context)
        try:
            setup = await conn.request(c.SetupAppend(next_request_id(), self.writer_id, segment, self.token()),
                                       timeout=self.timeout)
            if not isinstance(setup, c.AppendSetup):
                raise NoSuchSegmentError(segment, f"cannot append watermarks: {type(setup).__name__}")
            payload = event[_EVENT_HEADER.size:]
            reply = await conn.request(c.ConditionalAppend(self.writer_id, setup.last_event_number + 1,
                                                           expected_offset, payload, next_request_id()),
                                       timeout=self.timeout)
            if isinstance(reply, c.ConditionalCheckFailed):
                return False
            if not isinstance(reply, c.DataAppended):
                raise NoSuchSegmentError(segment, f"watermark append answered {type(reply).__name__}")
            return True
        finally:
            await conn.close()


class WatermarkJob:
    """Every ``period`` seconds: compute and append the next watermark of each stream with writer marks."""

    def __init__(self, controller: Controller, clock: Clock, append: Appender, *, period: float = 10.0) -> None:
        self.controller = controller
        self.clock = clock
        self.append = append
        self.period = period
        self.windows: dict[tuple[str, str], WatermarkWindow] = {}
        self.emitted = 0
        self._seeded = False

    async def run(self) -> None:
        await self._seed()
        await run_periodically(self.clock, self.period, self.run_once, "watermark cycle")

    async def _seed(self) -> None:
        """Visit every stream that exists at start once (marks written before a restart), one at a time as the
        scopes' stream indexes are read: only the streams that have marks stay in ``marked_streams`` (a restart with
        many streams holds no set of all of them while the first round goes through them). Streams created later are
        visited only once their writers note a time."""
        if self._seeded:
            return
        marked = self.controller.ctx.marked_streams
        try:
            async for key in self.controller.store.user_streams():
                marked.add(key)  # process() drops it again if it has no marks
                await self._process_marked(*key)
        except Exception as exc:  # retried at the next round
            log.warning("watermark job could not go through the streams yet: %r", exc)
            return
        self._seeded = True

    async def run_once(self) -> None:
        if not self._seeded:
            await self._seed()
            return
        for scope, stream in sorted(self.controller.ctx.marked_streams):
            await self._process_marked(scope, stream)

    async def _process_marked(self, scope: str, stream: str) -> None:
        try:
            await self.process(scope, stream)
        except (StreamNotFoundError, NoSuchSegmentError) as exc:
            self.controller.ctx.marked_streams.discard((scope, stream))
            log.info("watermarking of %s/%s skipped this cycle: %s", scope, stream, exc)

    async def process(self, scope: str, stream: str) -> Watermark | None:
        ctx = self.controller.ctx
        view = await ctx.view(scope, stream)
        prefix = WRITER_PREFIX.encode()
        marks = [WriterMark(int(v["time"]), {int(k): int(o) for k, o in v["position"].items()})
                 async for key, v, _ver in view.table.items() if key.startswith(prefix) and not v.get("shutdown")]
        if not marks or view.state is StreamState.CREATING:
            self.windows.pop((scope, stream), None)
            if not marks:
                ctx.marked_streams.discard((scope, stream))
            return None
        epochs = await ctx.all_epochs(view)
        segments = all_segments(epochs)
        marks = [m for m in marks if all(i in segments for i in m.position)]
        window = self.windows.setdefault((scope, stream), WatermarkWindow())
        watermark = window.next_watermark(marks, segments, {e.epoch: e for e in epochs})
        if watermark is not None and not await self._write(scope, stream, watermark):
            watermark = None
        window.complete_iteration(watermark)
        if watermark is not None:
            self.emitted += 1
        return watermark

    async def _write(self, scope: str, stream: str, watermark: Watermark) -> bool:
        ctx = self.controller.ctx
        if not await self.controller.streams.ensure_mark_stream(scope, mark_stream_name(stream)):
            raise StreamNotFoundError(f"stream {scope}/{stream} does not exist")
        mark_view = await ctx.view(scope, mark_stream_name(stream))
        (segment,) = await ctx.active_segments(mark_view)
        name = qualified_segment_name(scope, mark_stream_name(stream), segment.id)
        length = (await ctx.ops.get_segment_info(name)).length
        if await self.append(name, watermark.to_event(), length):
            return True
        log.info("watermark of %s/%s not written: %s changed concurrently", scope, stream, name)
        return False
