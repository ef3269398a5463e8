"""ReadFromAnabranch against a real ``anabranch standalone`` (watermark job every 0.2 s), on Beam's FnApiRunner.

- A bounded read between two stream cuts taken around a scale reads exactly the events written between them,
  from several segments (before and after the scale); a checkpoint record's cut overrides the start; an ordered
  one reads the same events, in per-key order across the scale.
- An unbounded read tails a stream while a writer writes and the stream is split then merged: it follows the
  successors (each only after all its predecessors), reads every acknowledged event once in per-key order, and
  ends when the stream is sealed and read; read as a backlog, a merged segment waits for its slow predecessor.
- Writer-noted time (``note_time``) becomes event timestamps: a fixed-window count groups the events by the
  time noted before they were written, in bounded and unbounded reads; an idle timeout ends the unbounded one.
- Checkpoint records round-trip and update only from the version read.
- Driven directly (as the runner does), the tail DoFn's watermark ends at the last noted time and never passes
  an element's timestamp; a self-checkpoint's residual resumes exactly where the primary stopped.
  (The FnApiRunner fires event-time windows only when its input ends, so a pipeline cannot show the watermark.)

Pipelines append their output, in the order the reader emits it, to a file per test (``Collect``).
"""

from __future__ import annotations

import ast
import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.transforms.window import FixedWindows
from apache_beam.utils.timestamp import MIN_TIMESTAMP

from anabranch.beam import CheckpointRecord, CheckpointStore, ReadFromAnabranch
from anabranch.beam.checkpoint_store import CheckpointConflictError
from anabranch.beam.read import _ReadTail
from anabranch.beam.restrictions import TailCut, TailCutTracker
from anabranch.client import BytesSerializer, ClientConfig, ScalingPolicy, StreamConfiguration, StreamManager
from anabranch.client.hashing import hash_routing_key
from anabranch.client.stream_positions import tail_positions
from anabranch.client.watermark_reader import WatermarkReader
from anabranch.model.stream_cut import StreamCut
from anabranch.testing.load import KEYS, LoadWriter, check_exactly_once_in_key_order, event
from anabranch.testing.processes import Standalone

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

class Collect(beam.DoFn):  # type: ignore[misc]
    """Appends each element's ``repr`` to a file (the FnApiRunner processes one bundle at a time, in order)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def process(self, value: Any) -> None:
        with self.path.open("a") as file:
            file.write(repr(value) + "\n")


def collected(path: Path) -> list[Any]:
    return [ast.literal_eval(line) for line in path.read_text().splitlines()] if path.exists() else []


def run(build: Any) -> None:
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        build(pipeline)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    process = Standalone(tmp_path_factory.mktemp("beam-read") / "data", None, None,
                         "--autoscale-time-scale", "50")
    process.start()
    try:
        yield process
    finally:
        process.kill()


def new_scope() -> str:
    return f"br-{uuid.uuid4().hex[:8]}"


async def write_batch(manager: StreamManager, scope: str, stream: str, name: str, count: int) -> list[bytes]:
    writer = manager.create_writer(scope, stream)
    events = [f"{name}-{i}".encode() for i in range(count)]
    try:
        for i, data in enumerate(events):
            await writer.write_event(data, routing_key=f"key-{i % 9}")
        await writer.flush()
    finally:
        await writer.close()
    return events


async def split_then_merge(manager: StreamManager, scope: str, stream: str) -> None:
    """Splits the stream's lowest segment in two, then merges those two back."""
    first = min(await manager.get_current_segments(scope, stream), key=lambda s: s.min_key)
    middle = (first.min_key + first.max_key) / 2
    await manager.scale_stream(scope, stream, [first.segment_id], [(first.min_key, middle), (middle, first.max_key)])
    halves = [s for s in await manager.get_current_segments(scope, stream) if s.max_key <= first.max_key]
    assert len(halves) == 2
    await manager.scale_stream(scope, stream, [s.segment_id for s in halves], [(first.min_key, first.max_key)])


def test_bounded_read_between_two_cuts_across_a_scale(server: Standalone, tmp_path: Path) -> None:
    scope, stream = new_scope(), "bounded"

    async def prepare() -> tuple[Any, Any, list[bytes]]:
        async with StreamManager(server.controller_uri) as manager:
            await manager.create_scope(scope)
            await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(2)))
            await write_batch(manager, scope, stream, "before", 40)
            start = await manager.get_tail_stream_cut(scope, stream)
            inside = await write_batch(manager, scope, stream, "in-a", 50)
            await split_then_merge(manager, scope, stream)
            inside += await write_batch(manager, scope, stream, "in-b", 60)
            end = await manager.get_tail_stream_cut(scope, stream)
            await write_batch(manager, scope, stream, "after", 30)
            await CheckpointStore(manager, scope).save(CheckpointRecord("resume-bounded", {(scope, stream): start}))
            return start, end, inside

    start, end, inside = asyncio.run(prepare())
    assert len(end.positions) >= 2 and set(end.positions) != set(start.positions)

    def build(pipeline: beam.Pipeline) -> None:
        (pipeline | "between" >> ReadFromAnabranch(server.controller_uri, [(scope, stream)], start=start, end=end)
         | "keep-between" >> beam.ParDo(Collect(tmp_path / "between")))
        (pipeline | "resumed" >> ReadFromAnabranch(server.controller_uri, [(scope, stream)], end=end,
                                                   checkpoint_name="resume-bounded")
         | "keep-resumed" >> beam.ParDo(Collect(tmp_path / "resumed")))
        (pipeline | "whole" >> ReadFromAnabranch(server.controller_uri, [(scope, stream)], end="tail")
         | "keep-whole" >> beam.ParDo(Collect(tmp_path / "whole")))
        (pipeline | "ordered" >> ReadFromAnabranch(server.controller_uri, [(scope, stream)], start=start, end=end,
                                                   ordered=True)
         | "keep-ordered" >> beam.ParDo(Collect(tmp_path / "ordered")))

    run(build)
    assert Counter(collected(tmp_path / "between")) == Counter(inside)
    assert Counter(collected(tmp_path / "resumed")) == Counter(inside)
    whole = collected(tmp_path / "whole")
    assert len(whole) == 180 and len(set(whole)) == 180
    ordered = collected(tmp_path / "ordered")
    assert Counter(ordered) == Counter(inside)
    per_key: dict[int, list[bytes]] = {}
    for data in ordered:
        per_key.setdefault(int(data.rsplit(b"-", 1)[1]) % 9, []).append(data)
    for events in per_key.values():
        assert events == [e for e in inside if e in set(events)], "per-key order lost across the scale"


def test_unbounded_read_follows_scaling_in_key_order_and_ends_when_sealed(server: Standalone,
                                                                         tmp_path: Path) -> None:
    scope, stream = new_scope(), "tail"
    acked: set[bytes] = set()
    failure: list[BaseException] = []

    async def create() -> None:
        async with StreamManager(server.controller_uri) as manager:
            await manager.create_scope(scope)
            await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(2)))

    async def drive() -> None:
        async with StreamManager(server.controller_uri) as manager:
            writer = LoadWriter(manager, scope, stream, rate=500)
            writer.start()
            await writer.wait_acked(150, timeout=30)
            await split_then_merge(manager, scope, stream)
            await writer.wait_acked(len(writer.acked) + 150, timeout=30)
            await writer.stop()
            assert not writer.failed, writer.failed[:1]
            acked.update(writer.acked)
            await manager.seal_stream(scope, stream)

    def driver() -> None:
        try:
            asyncio.run(drive())
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)

    asyncio.run(create())
    thread = threading.Thread(target=driver)
    thread.start()
    try:
        run(lambda p: p | ReadFromAnabranch(server.controller_uri, [(scope, stream)], checkpoint_interval=0.5,
                                            idle_timeout=30.0) | beam.ParDo(Collect(tmp_path / "tail")))
    finally:
        thread.join(60)
    assert not failure, failure
    got = collected(tmp_path / "tail")
    assert len(acked) >= 300
    check_exactly_once_in_key_order(got, acked)
    assert {event(k, 0) for k in range(KEYS)} <= set(got)


def test_unbounded_read_waits_for_every_predecessor_of_a_merge(server: Standalone, tmp_path: Path) -> None:
    """One half of a split holds many blocks of events, the other a few events; after the halves merge, the
    merged segment holds later events of the same keys. Read as a backlog, the small half ends long before the
    big one: the merged segment must wait for both."""
    scope, stream = new_scope(), "merge"
    low = [k for k in (f"key-{i}" for i in range(40)) if hash_routing_key(k) < 0.5][:3]
    high = [k for k in (f"key-{i}" for i in range(40)) if hash_routing_key(k) >= 0.5][:3]
    padding = b"." * 200_000

    async def prepare() -> list[bytes]:
        async with StreamManager(server.controller_uri) as manager:
            await manager.create_scope(scope)
            await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(1)))
            await manager.scale_stream(scope, stream, [0], [(0.0, 0.5), (0.5, 1.0)])
            writer = manager.create_writer(scope, stream)
            written: list[bytes] = []
            try:
                for seq in range(15):
                    for key in high:
                        written.append(f"{key}:{seq}:".encode())
                        await writer.write_event(written[-1] + padding, routing_key=key)
                for key in low:
                    written.append(f"{key}:0:".encode())
                    await writer.write_event(written[-1], routing_key=key)
                await writer.flush()
                halves = [s.segment_id for s in await manager.get_current_segments(scope, stream)]
                await manager.scale_stream(scope, stream, halves, [(0.0, 1.0)])
                for key in high + low:
                    written.append(f"{key}:99:".encode())
                    await writer.write_event(written[-1], routing_key=key)
                await writer.flush()
            finally:
                await writer.close()
            await manager.seal_stream(scope, stream)
            return written

    written = asyncio.run(prepare())
    run(lambda p: (p | ReadFromAnabranch(server.controller_uri, [(scope, stream)], idle_timeout=30.0)
                   | beam.Map(lambda data: data[:data.index(b":", data.index(b":") + 1) + 1])
                   | beam.ParDo(Collect(tmp_path / "merge"))))
    got = collected(tmp_path / "merge")
    assert Counter(got) == Counter(written)
    for key in high + low:
        seqs = [int(e.split(b":")[1]) for e in got if e.startswith(f"{key}:".encode())]
        assert seqs == sorted(seqs), f"{key} out of order across the merge: {seqs}"


WINDOW_MS = 10_000
BATCHES = [3, 5, 8, 13]
"""Events written after noting each time (one fixed window apart)."""


@pytest.fixture(scope="module")
def noted(server: Standalone) -> tuple[str, str]:
    """A three-segment stream whose writer notes time k * WINDOW_MS + 1000, waits until a watermark shows it, and
    then writes BATCHES[k] events."""
    scope, stream = new_scope(), "timed"

    async def wait_for_mark(manager: StreamManager, marks: WatermarkReader, at_least: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            offsets = {s: o + 1 for s, o in
                       (await tail_positions(manager.controller, manager.router, scope, stream)).items()}
            await marks.advance(offsets)
            if (marks.time_window.lower_time_bound or -1) >= at_least:
                return
            assert time.monotonic() < deadline, f"no watermark of {at_least} within 30 s"
            await asyncio.sleep(0.05)

    async def prepare() -> None:
        async with StreamManager(server.controller_uri) as manager:
            await manager.create_scope(scope)
            await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(3)))
            marks = WatermarkReader(scope, stream, manager.controller, manager.router)
            writer = manager.create_writer(scope, stream)
            try:
                for k, count in enumerate(BATCHES):
                    noted_at = k * WINDOW_MS + 1000
                    assert await writer.note_time(noted_at)
                    await wait_for_mark(manager, marks, noted_at)
                    for i in range(count):
                        await writer.write_event(b"%d:%d" % (k, i), routing_key=f"r{i}")
                    await writer.flush()
            finally:
                await writer.close()

    asyncio.run(prepare())
    return scope, stream


class _WindowStart(beam.DoFn):  # type: ignore[misc]
    def process(self, count: int, window: Any = beam.DoFn.WindowParam) -> Iterator[tuple[int, int]]:
        yield int(window.start.micros // 1000), count


@pytest.mark.parametrize("bounded", [True, False], ids=["bounded", "unbounded"])
def test_writer_noted_time_drives_fixed_window_counts(server: Standalone, noted: tuple[str, str],
                                                      bounded: bool, tmp_path: Path) -> None:
    scope, stream = noted
    name = f"windows-{bounded}"
    read = ReadFromAnabranch(server.controller_uri, [(scope, stream)], end="tail" if bounded else None,
                             idle_timeout=None if bounded else 1.0, checkpoint_interval=0.3)
    run(lambda p: (p | read
                   | beam.WindowInto(FixedWindows(WINDOW_MS / 1000))
                   | beam.CombineGlobally(beam.combiners.CountCombineFn()).without_defaults()
                   | beam.ParDo(_WindowStart())
                   | beam.ParDo(Collect(tmp_path / name))))
    assert sorted(collected(tmp_path / name)) == [(k * WINDOW_MS, count) for k, count in enumerate(BATCHES)]


def test_timestamp_fn_sets_event_time(server: Standalone, noted: tuple[str, str], tmp_path: Path) -> None:
    scope, stream = noted

    def stamp(value: bytes) -> float:
        return 100.0 * int(value.split(b":")[0])

    run(lambda p: (p | ReadFromAnabranch(server.controller_uri, [(scope, stream)], end="tail", timestamp_fn=stamp)
                   | beam.WindowInto(FixedWindows(100))
                   | beam.CombineGlobally(beam.combiners.CountCombineFn()).without_defaults()
                   | beam.ParDo(_WindowStart())
                   | beam.ParDo(Collect(tmp_path / "stamped"))))
    assert sorted(collected(tmp_path / "stamped")) == [(k * 100_000, count) for k, count in enumerate(BATCHES)]


class TrackerView:
    """What a splittable DoFn's ``process`` gets from the runner, over a real tracker."""

    def __init__(self, tracker: TailCutTracker) -> None:
        self.tracker = tracker
        self.residual: TailCut | None = None

    def current_restriction(self) -> TailCut:
        return self.tracker.current_restriction()

    def try_claim(self, position: TailCut) -> bool:
        return bool(self.tracker.try_claim(position))

    def defer_remainder(self, delay: Any = None) -> None:
        split = self.tracker.try_split(0)
        assert split is not None
        self.residual = split[1]


def test_watermark_follows_noted_time_and_no_event_is_late(server: Standalone, noted: tuple[str, str]) -> None:
    """The tail DoFn driven directly: its watermark estimator ends at the last time noted before the tail, never
    passes an element's timestamp, and the self-checkpoint's residual resumes where the primary ended."""
    scope, stream = noted

    async def head() -> dict[int, int]:
        async with StreamManager(server.controller_uri) as manager:
            return await manager.controller.get_head_segments(scope, stream)

    read = _ReadTail(ClientConfig(server.controller_uri), BytesSerializer(), None, 60.0, 1.0)
    read.setup()
    try:
        view = TrackerView(TailCutTracker(TailCut.of(scope, stream, asyncio.run(head()).items(),
                                                     last_activity=time.time())))
        estimator = ManualWatermarkEstimator(MIN_TIMESTAMP)
        stamps = []
        for output in read.process(view.current_restriction(), view, estimator):
            assert output.timestamp >= estimator.current_watermark(), "an event behind the watermark"
            stamps.append(output.timestamp.micros // 1000)
        view.tracker.check_done()
        assert sorted(stamps) == [k * WINDOW_MS + 1000 for k, count in enumerate(BATCHES) for _ in range(count)]
        assert estimator.current_watermark().micros // 1000 == (len(BATCHES) - 1) * WINDOW_MS + 1000

        # Checkpoint after the first poll: the residual resumes where the primary ended; together they read
        # every event once.
        start = TailCut.of(scope, stream, asyncio.run(head()).items(), last_activity=time.time())
        quick = _ReadTail(ClientConfig(server.controller_uri), BytesSerializer(), None, 0.0, None)
        quick.setup()
        try:
            view = TrackerView(TailCutTracker(start))
            first = list(quick.process(start, view, ManualWatermarkEstimator(MIN_TIMESTAMP)))
        finally:
            quick.teardown()
        view.tracker.check_done()
        residual = view.residual
        assert residual is not None and not residual.ended
        assert view.tracker.current_restriction().positions == residual.positions
        rest_view = TrackerView(TailCutTracker(residual))
        rest = list(read.process(residual, rest_view, ManualWatermarkEstimator(MIN_TIMESTAMP)))
        rest_view.tracker.check_done()
        values = [output.value for output in first + rest]
        assert sorted(values) == sorted(b"%d:%d" % (k, i) for k, count in enumerate(BATCHES) for i in range(count))
    finally:
        read.teardown()


def test_the_documented_read_runs(server: Standalone, noted: tuple[str, str]) -> None:
    """docs/beam.md's example, pointed at this server and a stream with events, runs to the end."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "beam.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    assert '"tcp://127.0.0.1:9090", [("examples", "sensors")]' in code
    scope, stream = noted
    code = code.replace('"tcp://127.0.0.1:9090", [("examples", "sensors")]',
                        f'"{server.controller_uri}", [("{scope}", "{stream}")]')
    exec(compile(code, "docs/beam.md", "exec"), {})


def test_checkpoint_record_round_trip_and_conditional_update(server: Standalone) -> None:
    scope = new_scope()

    async def check() -> None:
        async with StreamManager(server.controller_uri) as manager:
            await manager.create_scope(scope)
            store = CheckpointStore(manager, scope)
            assert await store.load("pipe") is None
            txn = uuid.uuid4()
            saved = await store.save(CheckpointRecord("pipe", {(scope, "in"): StreamCut(scope, "in", {0: 12, 1: 40})},
                                                      {(scope, "out"): (txn,)}, {"writer": "w1"}))
            loaded = await store.load("pipe")
            assert loaded == saved and loaded is not None and loaded.version is not None
            assert loaded.cut(scope, "in") == StreamCut(scope, "in", {0: 12, 1: 40})
            with pytest.raises(CheckpointConflictError):
                await store.save(CheckpointRecord("pipe"))
            moved = await store.save(loaded.with_cuts({(scope, "in"): StreamCut(scope, "in", {2: 0})})
                                     .with_pending({(scope, "out"): ()}))
            with pytest.raises(CheckpointConflictError):
                await store.save(loaded)
            assert await store.load("pipe") == moved and moved.extra == {"writer": "w1"}
            assert await store.load("other") is None
            await store.delete("pipe")
            assert await store.load("pipe") is None

    asyncio.run(check())
