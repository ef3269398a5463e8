"""Readers' time windows against a real ``anabranch standalone`` whose watermark job runs every 0.5 s.

Two writers stamp each event with the wall-clock time (ms) at which it is written, flush, then note the time
(so every time a writer notes is at least the stamps of what it wrote before, and at most those it writes
after). A reader that lags behind reads them slowly, taking a checkpoint every few dozen events: at a
checkpoint the reader has just synced, so its window is computed at exactly the events read so far.

With one segment the reader is always entirely before or after each watermark, so a lagging reader sees both
bounds; with two it reads each segment's backlog a block at a time, so it is often ahead of the next
watermark in one segment and behind in the other, where no watermark bounds what it read (upper unknown).
A stream split while the writers write makes the reader cross from a segment to its successors.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from anabranch.client import (
    ClientConfig,
    EventStreamReader,
    EventStreamWriter,
    JsonSerializer,
    ReaderGroupConfig,
    ScalingPolicy,
    StreamConfiguration,
    StreamManager,
    StreamNotInReaderGroupError,
    TimeWindow,
)
from anabranch.testing.processes import Standalone

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]
STREAM = "clock"
TIME_SCALE = "20"
WRITE_SECONDS = 3.0
LAG_SECONDS = 1.5
"""The reader starts this long after the writers, so watermarks lie ahead of it."""
SCALE_AFTER = 0.8
CHECKPOINT_EVERY = 30


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    process = Standalone(tmp_path_factory.mktemp("watermarks") / "data", None, None,
                         "--autoscale-time-scale", TIME_SCALE)
    process.start()
    try:
        yield process
    finally:
        process.kill()


@dataclass
class Observation:
    window: TimeWindow
    read_before: int
    """How many events were read when the window was observed."""
    at_checkpoint: bool


@dataclass
class ReadLog:
    stamps: list[int] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    checkpoints: int = 0


async def write(writer: EventStreamWriter[Any], name: str, started: asyncio.Barrier, stop: asyncio.Event) -> int:
    """Notes the time before writing anything, then writes batches of three stamped events, noting after each."""
    await writer.note_time(now_ms())
    await started.wait()
    written = 0
    while not stop.is_set():
        for _ in range(3):
            await writer.write_event({"writer": name, "t": now_ms()}, routing_key=f"{name}-{written % 7}")
            written += 1
        await writer.flush()
        await writer.note_time(now_ms())
        await asyncio.sleep(0.05)
    return written


async def read(reader: EventStreamReader[Any], group: Any, total: asyncio.Future[int], log: ReadLog) -> None:
    scope = group.scope
    names = itertools.count()
    pending: asyncio.Task[Any] | None = None
    while not total.done() or len(log.stamps) < total.result():
        if pending is None and len(log.stamps) >= CHECKPOINT_EVERY * (log.checkpoints + 1):
            pending = asyncio.create_task(group.initiate_checkpoint(f"cp{next(names)}", timeout=30))
        result = await reader.read_next_event(timeout=1.0)
        if result.is_checkpoint:
            log.checkpoints += 1
            log.observations.append(Observation(reader.current_time_window(scope, STREAM), len(log.stamps), True))
            assert pending is not None
            await asyncio.wait_for(pending, 30)
            pending = None
            continue
        if result.event is not None:
            log.stamps.append(result.event["t"])
            log.observations.append(Observation(reader.current_time_window(scope, STREAM), len(log.stamps), False))
            await asyncio.sleep(0.003)
    if pending is not None:
        pending.cancel()


def check_monotonic(observations: list[Observation]) -> None:
    lowers = [o.window.lower_time_bound for o in observations]
    first = next((i for i, v in enumerate(lowers) if v is not None), len(lowers))
    known = [v for v in lowers[first:] if v is not None]
    assert len(known) == len(lowers) - first, "a known lower bound became unknown"
    assert known == sorted(known), f"lower bounds went back: {known}"
    uppers = [o.window.upper_time_bound for o in observations if o.window.upper_time_bound is not None]
    assert uppers == sorted(uppers), f"upper bounds went back: {uppers}"


def check_brackets(observations: list[Observation], stamps: list[int]) -> None:
    for obs in observations:
        lower, upper = obs.window.lower_time_bound, obs.window.upper_time_bound
        if lower is not None and obs.read_before < len(stamps):
            assert min(stamps[obs.read_before:]) >= lower, f"read an event stamped before {obs}"
        if upper is not None and obs.at_checkpoint and obs.read_before:
            assert max(stamps[:obs.read_before]) <= upper, f"had read an event stamped after {obs}"


@pytest.mark.parametrize(("segments", "split"), [(1, False), (2, False), (1, True)])
async def test_time_window_advances_and_brackets_what_was_read(server: Standalone, segments: int,
                                                               split: bool) -> None:
    scope = f"wm-{segments}-{int(split)}"
    async with StreamManager(ClientConfig(server.controller_uri)) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, STREAM, StreamConfiguration(scaling=ScalingPolicy.fixed(segments)))
        writers = [manager.create_writer(scope, STREAM, JsonSerializer()) for _ in range(2)]
        config = ReaderGroupConfig.for_streams(scope, STREAM, group_refresh_time=0.2)
        group = await manager.create_reader_group(scope, "timely", config)
        reader = await group.create_reader("r1", JsonSerializer())
        with pytest.raises(StreamNotInReaderGroupError):
            reader.current_time_window(scope, "other")
        assert reader.current_time_window(scope, STREAM) == TimeWindow(None, None)

        stop = asyncio.Event()
        started = asyncio.Barrier(2)
        writing = asyncio.gather(*(write(w, f"w{i}", started, stop) for i, w in enumerate(writers)))
        total: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        log = ReadLog()
        if split:
            await asyncio.sleep(SCALE_AFTER)
            (first,) = await manager.get_current_segments(scope, STREAM)
            await manager.controller.scale_and_wait(scope, STREAM, [first.segment_id], [(0.0, 0.5), (0.5, 1.0)])
        await asyncio.sleep(LAG_SECONDS - (SCALE_AFTER if split else 0.0))
        reading = asyncio.create_task(asyncio.wait_for(read(reader, group, total, log), 60))
        await asyncio.sleep(WRITE_SECONDS - LAG_SECONDS)
        stop.set()
        total.set_result(sum(await asyncio.wait_for(writing, 30)))
        await reading

        assert len(log.stamps) == total.result()
        check_monotonic(log.observations)
        check_brackets(log.observations, log.stamps)
        at_checkpoints = [o.window for o in log.observations if o.at_checkpoint]
        assert len(at_checkpoints) >= 3
        if segments == 1 and not split:
            assert any(w.lower_time_bound is not None and w.upper_time_bound is not None for w in at_checkpoints), (
                f"no checkpoint saw both bounds: {at_checkpoints}")
        final = log.observations[-1].window
        assert final.lower_time_bound is not None and final.lower_time_bound >= log.stamps[0]
        await reader.close()
        for writer in writers:
            await writer.close()
