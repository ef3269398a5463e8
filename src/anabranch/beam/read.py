"""``ReadFromAnabranch``: Anabranch streams as a Beam source (a splittable DoFn over stream-cut restrictions).

Expansion: ``Impulse`` → ``_PlanRead`` (one connection, at run time: resolves the start cut — the pipeline's
checkpoint record, the given cut, the head or the tail — and, for a bounded read, the end cut) → ``Reshuffle``
→ the splittable DoFn (``_ReadRanges``, ``_ReadOrdered`` or ``_ReadTail``).

- Bounded (``end`` given: a ``StreamCut`` or ``"tail"``, the tail when the pipeline starts): ``_PlanRead`` emits the
  batch client's segment ranges between the cuts, one restriction each (``SegmentRange``); the runner may split
  them further, at event boundaries only. Exactly the events between the cuts are read. Ranges are independent:
  no order across segments (so none across a scale either), per-key order within a segment.
- Unbounded (no ``end``): one restriction per stream (``TailCut``), read by one DoFn at a time. It tails every
  segment of the cut, adds a sealed segment's successors once all their predecessors are read (per-key order
  holds across scaling), and checkpoints itself (``defer_remainder``) every ``checkpoint_interval`` seconds so
  the runner can resume it. It ends when the stream is sealed and read, or after ``idle_timeout`` seconds
  without an event (if given).
- Ordered (``end`` and ``ordered=True``): as unbounded, up to the end cut (segments in it are read to their
  offset there, their successors not followed): bounded, with per-key order across scaling.

Element timestamps: ``timestamp_fn(value)`` (seconds, or a Beam ``Timestamp``) when given, else the writers'
noted time (``note_time``) around the event: the lower bound of the time window at the read position (ms), or
its upper bound near the head of the stream. The watermark (a manual estimator) is the lower bound of that time
window: writers promise not to write anything older after noting a time. Without watermarks (no writer notes
time) it stays at its minimum until the restriction is done.

Connections: each DoFn instance opens one ``StreamManager`` on a private loop thread in ``setup`` (closed in
``teardown``); nothing with a connection is pickled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from anabranch.beam.checkpoint_store import CheckpointStore
from anabranch.beam.restrictions import (
    EventClaim,
    SegmentRange,
    SegmentRangeTracker,
    TailCut,
    TailCutTracker,
    advance_cut,
)
from anabranch.client.blocking import LoopThread
from anabranch.client.config import ClientConfig
from anabranch.client.errors import ClientError
from anabranch.client.segment_reader import EventBlock, SegmentReader
from anabranch.client.serializers import BytesSerializer, Serializer
from anabranch.client.stream_manager import StreamManager
from anabranch.client.stream_positions import tail_positions
from anabranch.client.watermark_reader import ADVANCE_TIMEOUT, TimeWindow, WatermarkReader
from anabranch.errors import ConfigError, ConnectionFailedError, DataCorruptionError
from anabranch.model.names import ScopedSegment
from anabranch.model.stream_cut import StreamCut

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 2.0
"""Seconds an unbounded read runs before checkpointing itself."""
POLL_TIMEOUT = 0.2
"""Seconds one poll of the tailed segments waits for new events."""

CutSpec = tuple[tuple[int, int], ...] | str | None
"""A picklable start/end of one stream: segment offsets, ``"head"``/``"tail"``, or None."""

CutArgument = StreamCut | Mapping[tuple[str, str], StreamCut] | str | None
"""A start/end as given: one stream's cut, a cut per stream, ``"head"``/``"tail"``, or None."""


def _cut_specs(cut: CutArgument, streams: tuple[tuple[str, str], ...],
               what: str) -> tuple[tuple[tuple[str, str], CutSpec], ...]:
    """The start or end of each stream read."""
    if cut is None or isinstance(cut, str):
        if isinstance(cut, str) and cut not in ("head", "tail"):
            raise ConfigError(f"{what} must be a StreamCut, a dict of them, 'head', 'tail' or None; got {cut!r}")
        return tuple((key, cut) for key in streams)
    cuts = {(cut.scope, cut.stream): cut} if isinstance(cut, StreamCut) else dict(cut)
    for key, one in cuts.items():
        if key not in streams or (one.scope, one.stream) != key:
            raise ConfigError(f"the {what} cut of {key[0]}/{key[1]} does not belong to a stream read "
                              f"({', '.join(f'{s}/{t}' for s, t in streams)})")
    if len(cuts) != len(streams):
        missing = [f"{s}/{t}" for s, t in streams if (s, t) not in cuts]
        raise ConfigError(f"no {what} cut for {', '.join(missing)}: give one stream cut per stream read")
    return tuple((key, tuple(sorted(cuts[key].positions.items()))) for key in streams)


class _Connected:
    """A StreamManager on a private loop thread, opened in ``setup`` and closed in ``teardown``."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.runner: LoopThread | None = None
        self.manager: StreamManager | None = None

    def open(self) -> None:
        if self.runner is None:
            self.runner = LoopThread()

            async def make() -> StreamManager:
                return StreamManager(self.config)

            self.manager = self.runner.run(make())

    def run(self, coro: Any) -> Any:
        assert self.runner is not None, "setup() was not called"
        return self.runner.run(coro)

    def close(self) -> None:
        if self.runner is not None:
            if self.manager is not None:
                self.runner.run(self.manager.close())
            self.runner.stop()
            self.runner = self.manager = None

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = state["config"]
        self.runner = None
        self.manager = None


@dataclass(frozen=True)
class _Plan:
    streams: tuple[tuple[str, str], ...]
    start: tuple[tuple[tuple[str, str], CutSpec], ...]
    end: tuple[tuple[tuple[str, str], CutSpec], ...]
    checkpoint_name: str | None
    checkpoint_scope: str | None
    ordered: bool = False

    @property
    def bounded(self) -> bool:
        return any(spec is not None for _, spec in self.end)

    @property
    def as_ranges(self) -> bool:
        """Read as independent segment ranges (bounded, not ordered)."""
        return self.bounded and not self.ordered


class _PlanRead(beam.DoFn):  # type: ignore[misc]
    """Resolves the cuts at run time and emits the initial elements: ``SegmentRange``s or ``TailCut``s."""

    def __init__(self, config: ClientConfig, plan: _Plan) -> None:
        self.client = _Connected(config)
        self.plan = plan

    def setup(self) -> None:
        self.client.open()

    def teardown(self) -> None:
        self.client.close()

    def process(self, _impulse: bytes) -> Iterator[SegmentRange | TailCut]:
        yield from self.client.run(self._plan())

    async def _plan(self) -> list[SegmentRange | TailCut]:
        manager = self.client.manager
        assert manager is not None
        plan = self.plan
        record = None
        if plan.checkpoint_name is not None:
            scope = plan.checkpoint_scope or plan.streams[0][0]
            record = await CheckpointStore(manager, scope).load(plan.checkpoint_name)
        out: list[SegmentRange | TailCut] = []
        starts, ends = dict(plan.start), dict(plan.end)
        for scope, stream in plan.streams:
            resumed = record.cut(scope, stream) if record is not None else None
            start = resumed or await self._cut(manager, scope, stream, starts[(scope, stream)], "head")
            if not plan.bounded:
                out.append(TailCut.of(scope, stream, start.positions.items(), last_activity=time.time()))
                continue
            end = await self._cut(manager, scope, stream, ends[(scope, stream)], "tail")
            if plan.ordered:
                out.append(TailCut.of(scope, stream, start.positions.items(), last_activity=time.time(),
                                      stop=tuple(sorted(end.positions.items()))))
                continue
            for r in await manager.batch_client().list_segments(scope, stream, start, end):
                out.append(SegmentRange(scope, stream, r.segment.segment_id, r.start_offset, r.end_offset))
        return out

    @staticmethod
    async def _cut(manager: StreamManager, scope: str, stream: str, spec: CutSpec, default: str) -> StreamCut:
        spec = default if spec is None else spec
        if spec == "head":
            return StreamCut(scope, stream, await manager.controller.get_head_segments(scope, stream))
        if spec == "tail":
            return StreamCut(scope, stream, await tail_positions(manager.controller, manager.router, scope, stream))
        assert not isinstance(spec, str)
        return StreamCut(scope, stream, dict(spec))


class _Restrictions(RestrictionProvider):  # type: ignore[misc]
    def initial_restriction(self, element: SegmentRange | TailCut) -> SegmentRange | TailCut:
        return element

    def create_tracker(self, restriction: SegmentRange | TailCut) -> SegmentRangeTracker | TailCutTracker:
        if isinstance(restriction, SegmentRange):
            return SegmentRangeTracker(restriction)
        return TailCutTracker(restriction)

    def restriction_size(self, element: Any, restriction: SegmentRange | TailCut) -> float:
        return float(restriction.size) if isinstance(restriction, SegmentRange) else 1.0

    def truncate(self, element: Any, restriction: SegmentRange | TailCut) -> SegmentRange | TailCut | None:
        """On drain an unbounded read stops where it is; bounded ones (ranges, ordered reads) are read to the end."""
        if isinstance(restriction, TailCut) and restriction.stop is None:
            return None
        return restriction


class _Watermarks(WatermarkEstimatorProvider):  # type: ignore[misc]
    def initial_estimator_state(self, element: Any, restriction: Any) -> Timestamp:
        return MIN_TIMESTAMP

    def create_watermark_estimator(self, estimator_state: Timestamp) -> ManualWatermarkEstimator:
        return ManualWatermarkEstimator(estimator_state)


_RESTRICTION_PARAM = beam.DoFn.RestrictionParam(_Restrictions())
_WATERMARK_PARAM = beam.DoFn.WatermarkEstimatorParam(_Watermarks())


def _ms(value: int) -> Timestamp:
    return Timestamp(micros=value * 1000)


def _event_time(window: TimeWindow) -> Timestamp | None:
    bound = window.lower_time_bound if window.lower_time_bound is not None else window.upper_time_bound
    return None if bound is None else _ms(bound)


class _EventTimes:
    """Writer-noted time of one stream at read positions.

    An event's time is bounded with its own segment only, at its start offset + 1 — that is, against the
    watermarks whose cut lies at or before the event's start in that segment (their writers noted the time before
    writing the event: its time is at least their lower bound): one ``WatermarkReader`` per segment, advanced
    (reading new watermarks: I/O) once per block and per event without I/O. The watermark of the whole read
    (every segment of the restriction at its position) comes from one more reader.
    """

    def __init__(self, manager: StreamManager, scope: str, stream: str) -> None:
        self.manager = manager
        self.scope = scope
        self.stream = stream
        self.segments: dict[int, WatermarkReader] = {}
        self.whole = self._reader()

    def _reader(self) -> WatermarkReader:
        return WatermarkReader(self.scope, self.stream, self.manager.controller, self.manager.router)

    async def _advance(self, reader: WatermarkReader, offsets: Mapping[int, int]) -> None:
        try:
            async with asyncio.timeout(ADVANCE_TIMEOUT):
                await reader.advance(offsets)
        except (ClientError, ConnectionFailedError, DataCorruptionError, OSError, TimeoutError) as exc:
            log.warning("watermarks of %s/%s not read: %s", self.scope, self.stream, exc)

    async def refresh(self, segment_id: int, offset: int) -> None:
        """Before a block of ``segment_id`` whose first event starts at ``offset``."""
        reader = self.segments.get(segment_id)
        if reader is None:
            reader = self.segments[segment_id] = self._reader()
        await self._advance(reader, {segment_id: offset + 1})

    def event_time(self, segment_id: int, offset: int) -> Timestamp | None:
        reader = self.segments[segment_id]
        key_range = reader.ranges.get(segment_id)
        if key_range is None:
            return None
        reader.tracker.advance({segment_id: (*key_range, offset + 1)})
        return _event_time(reader.tracker.window)

    def forget(self, segment_id: int) -> None:
        self.segments.pop(segment_id, None)

    async def window(self, offsets: Mapping[int, int]) -> TimeWindow:
        """The time window of the whole read at ``offsets``."""
        await self._advance(self.whole, offsets)
        return self.whole.time_window


class _Tail:
    """The async side of an unbounded read: one ``SegmentReader`` per active segment of the cut."""

    def __init__(self, manager: StreamManager, cut: TailCut) -> None:
        self.manager = manager
        self.scope = cut.scope
        self.stream = cut.stream
        self.readers: dict[int, SegmentReader] = {}

    def _reader(self, cut: TailCut, segment_id: int, offset: int) -> SegmentReader:
        reader = self.readers.get(segment_id)
        if reader is None:
            name = ScopedSegment(self.scope, self.stream, segment_id).qualified_name
            reader = self.readers[segment_id] = SegmentReader(self.manager.router, name, offset,
                                                              cut.stop_offset(segment_id))
        return reader

    async def poll(self, cut: TailCut, timeout: float) -> list[tuple[int, EventBlock]]:
        """The next blocks of the cut's active segments (each waits at most ``timeout``)."""
        active = cut.active
        ids = sorted(active)
        blocks = await asyncio.gather(*(self._reader(cut, s, active[s]).read_block(timeout) for s in ids))
        return list(zip(ids, blocks, strict=True))

    async def complete(self, cut: TailCut, segment_id: int, end: int) -> TailCut:
        """The cut after ``segment_id`` was read to its end (sealed) or to its stop offset."""
        reader = self.readers.pop(segment_id, None)
        if reader is not None:
            await reader.close()
        if cut.stop_offset(segment_id) is not None:
            return advance_cut(cut, segment_id, end, [])
        successors = await self.manager.controller.get_successors(self.scope, self.stream, segment_id)
        return advance_cut(cut, segment_id, end,
                           [(s.segment.segment_id, s.predecessors) for s in successors])

    async def close(self) -> None:
        for reader in self.readers.values():
            await reader.close()
        self.readers.clear()


class _ReadFn(beam.DoFn):  # type: ignore[misc]
    """Reads ``SegmentRange``s (bounded) and ``TailCut``s (unbounded); ``_ReadRanges`` and ``_ReadTail`` declare
    which (Beam marks a DoFn's output unbounded or not by its ``process``)."""

    def __init__(self, config: ClientConfig, serializer: Serializer[Any],
                 timestamp_fn: Callable[[Any], Any] | None, checkpoint_interval: float,
                 idle_timeout: float | None) -> None:
        self.client = _Connected(config)
        self.serializer = serializer
        self.timestamp_fn = timestamp_fn
        self.checkpoint_interval = checkpoint_interval
        self.idle_timeout = idle_timeout

    def setup(self) -> None:
        self.client.open()

    def teardown(self) -> None:
        self.client.close()

    def _output(self, block: EventBlock, count: int, times: _EventTimes, segment_id: int) -> Iterator[Any]:
        """The first ``count`` events of ``block`` as values with timestamps."""
        deserialize = self.serializer.deserialize
        if self.timestamp_fn is None and count:
            self.client.run(times.refresh(segment_id, block.offsets[0]))
        for data, offset in zip(block.events[:count], block.offsets, strict=False):
            value = deserialize(data)
            if self.timestamp_fn is not None:
                stamp = self.timestamp_fn(value)
                yield TimestampedValue(value, stamp if isinstance(stamp, Timestamp) else Timestamp.of(stamp))
                continue
            event_time = times.event_time(segment_id, offset)
            yield value if event_time is None else TimestampedValue(value, event_time)

    @staticmethod
    def _advance_watermark(estimator: Any, window: TimeWindow) -> None:
        if window.lower_time_bound is not None:
            mark = _ms(window.lower_time_bound)
            if mark > estimator.current_watermark():
                estimator.set_watermark(mark)

    def _read_range(self, restriction: SegmentRange, tracker: Any, estimator: Any) -> Iterator[Any]:
        manager = self.client.manager
        assert manager is not None
        segment_id = restriction.segment_id
        segment = ScopedSegment(restriction.scope, restriction.stream, segment_id).qualified_name
        reader = self.client.run(_make_reader(manager, segment, restriction.start, restriction.stop))
        times = _EventTimes(manager, restriction.scope, restriction.stream)
        try:
            while True:
                block: EventBlock = self.client.run(reader.read_block())
                boundaries = [*block.offsets[1:], block.end]
                claimed = 0
                for offset, end in zip(block.offsets, boundaries, strict=True):
                    if not tracker.try_claim(EventClaim(offset, end, boundaries)):
                        break
                    claimed += 1
                yield from self._output(block, claimed, times, segment_id)
                if claimed < len(block.events):
                    return
                self._advance_watermark(estimator, self.client.run(times.window({segment_id: block.end})))
                if reader.at_end:
                    tracker.try_claim(EventClaim(block.end, block.end))
                    return
        finally:
            self.client.run(reader.close())

    def _tail(self, cut: TailCut, tracker: Any, estimator: Any) -> Iterator[Any]:
        manager = self.client.manager
        assert manager is not None
        tail = _Tail(manager, cut)
        times = _EventTimes(manager, cut.scope, cut.stream)
        deadline = time.monotonic() + self.checkpoint_interval
        try:
            while True:
                blocks = self.client.run(tail.poll(cut, POLL_TIMEOUT))
                now = time.time()
                for segment_id, block in blocks:
                    if block.events:
                        following = cut.with_offsets({segment_id: block.end}, at=now)
                        if not tracker.try_claim(following):
                            return
                        yield from self._output(block, len(block.events), times, segment_id)
                        cut = following
                        self._advance_watermark(estimator, self.client.run(times.window(dict(cut.positions))))
                    if block.at_end_of_segment:
                        following = self.client.run(tail.complete(cut, segment_id, block.end))
                        times.forget(segment_id)
                        if not tracker.try_claim(following):
                            return
                        cut = following
                if cut.finished:
                    return
                if self.idle_timeout is not None and now - cut.last_activity >= self.idle_timeout:
                    tracker.try_claim(dataclasses.replace(cut, ended=True))
                    return
                if time.monotonic() >= deadline:
                    tracker.defer_remainder()
                    return
        finally:
            self.client.run(tail.close())


class _ReadRanges(_ReadFn):
    def process(self, element: SegmentRange, tracker: Any = _RESTRICTION_PARAM,
                estimator: Any = _WATERMARK_PARAM) -> Iterator[Any]:
        yield from self._read_range(tracker.current_restriction(), tracker, estimator)


class _ReadOrdered(_ReadFn):
    """Reads ``TailCut``s with a stop cut: bounded."""

    def process(self, element: TailCut, tracker: Any = _RESTRICTION_PARAM,
                estimator: Any = _WATERMARK_PARAM) -> Iterator[Any]:
        yield from self._tail(tracker.current_restriction(), tracker, estimator)


class _ReadTail(_ReadFn):
    @beam.DoFn.unbounded_per_element()  # type: ignore[misc]
    def process(self, element: TailCut, tracker: Any = _RESTRICTION_PARAM,
                estimator: Any = _WATERMARK_PARAM) -> Iterator[Any]:
        yield from self._tail(tracker.current_restriction(), tracker, estimator)


async def _make_reader(manager: StreamManager, segment: str, start: int, stop: int) -> SegmentReader:
    return SegmentReader(manager.router, segment, start, stop)


class ReadFromAnabranch(beam.PTransform):  # type: ignore[misc]
    """Reads events from Anabranch streams.

    ``ReadFromAnabranch("tcp://127.0.0.1:9090", streams=[("scope", "stream")], start=None, end=None)``

    - ``client_config``: a controller URI or a ``ClientConfig``.
    - ``start``: a ``StreamCut`` (reading one stream), a dict ``{(scope, stream): StreamCut}`` (one per stream
      read), ``"head"`` (default) or ``"tail"``; overridden per stream by the cut in the checkpoint record
      ``checkpoint_name`` (in ``checkpoint_scope``, default: the first stream's scope) when it holds one.
    - ``end``: as ``start``, or ``"tail"`` (the tail when the pipeline starts), for a bounded read; None
      (default) tails the streams (unbounded).
    - ``ordered``: with an ``end``, read each stream as the unbounded read does (one DoFn per stream, successors
      after their predecessors: per-key order across scaling) up to the end cut, instead of as independent
      segment ranges read in parallel.
    - ``serializer``: turns event bytes into values (default: the bytes).
    - ``timestamp_fn``: element timestamp from a value (seconds or ``Timestamp``); default: writer-noted time.
    - ``checkpoint_interval``: seconds an unbounded read runs between self-checkpoints.
    - ``idle_timeout``: an unbounded read ends after this many seconds without events (None: never).
    """

    def __init__(self, client_config: ClientConfig | str, streams: Iterable[tuple[str, str]], *,
                 start: CutArgument = None, end: CutArgument = None, ordered: bool = False,
                 serializer: Serializer[Any] | None = None, timestamp_fn: Callable[[Any], Any] | None = None,
                 checkpoint_name: str | None = None, checkpoint_scope: str | None = None,
                 checkpoint_interval: float = CHECKPOINT_INTERVAL, idle_timeout: float | None = None) -> None:
        super().__init__()
        self.config = ClientConfig(client_config) if isinstance(client_config, str) else client_config
        stream_list = tuple((s, t) for s, t in streams)
        if not stream_list:
            raise ConfigError("ReadFromAnabranch needs at least one (scope, stream)")
        self.plan = _Plan(stream_list, _cut_specs(start, stream_list, "start"), _cut_specs(end, stream_list, "end"),
                          checkpoint_name, checkpoint_scope, ordered)
        self.serializer = serializer or BytesSerializer()
        self.timestamp_fn = timestamp_fn
        self.checkpoint_interval = checkpoint_interval
        self.idle_timeout = idle_timeout

    def _read_fn(self) -> type[_ReadFn]:
        if self.plan.as_ranges:
            return _ReadRanges
        return _ReadOrdered if self.plan.bounded else _ReadTail

    def expand(self, pbegin: Any) -> Any:
        return (pbegin
                | "Impulse" >> beam.Impulse()
                | "Plan" >> beam.ParDo(_PlanRead(self.config, self.plan))
                | "Distribute" >> beam.Reshuffle()
                | "Read" >> beam.ParDo(self._read_fn()(
                    self.config, self.serializer, self.timestamp_fn, self.checkpoint_interval, self.idle_timeout)))
