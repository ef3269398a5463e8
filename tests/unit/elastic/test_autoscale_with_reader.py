"""Auto-scaling with a reader reading throughout, in one process on a ManualClock.

A real segment store behind a ``WireServer`` feeds a ``SegmentStatsRecorder`` (on the manual clock) from the
appends it stores; a ``ControllerService`` serves the client; the test drives an ``AutoScaler`` on the same clock
tick by tick. The recorder reports to a table of the test's own, so the service's own auto-scaler (on the system
clock, polling the default table) never sees the requests. Our client's writer writes keyed events at a low rate,
then ten times that, then low again: the stream splits, then merges back; the segment count stays within the
policy, and the reader gets every event exactly once, in order per routing key, across every epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from anabranch.client import (
    EventStreamReader,
    EventStreamWriter,
    ReaderGroupConfig,
    ScalingPolicy,
    StreamConfiguration,
    StreamManager,
    StringSerializer,
)
from anabranch.clock import ManualClock
from anabranch.controller.autoscale import AutoScaler
from anabranch.controller.segment_helper import SegmentHelper
from anabranch.controller.service import ControllerService
from anabranch.model.names import SYSTEM_SCOPE, table_segment_name
from anabranch.segmentstore.server import WireServer
from anabranch.segmentstore.stats import SegmentStatsRecorder, TableScaleReporter, store_policy_lookup
from anabranch.segmentstore.store import open_segment_store
from anabranch.segmentstore.tables import TableStore

HOST = "127.0.0.1"
SCOPE, STREAM = "elastic", "keyed"
REQUESTS_TABLE = table_segment_name(SYSTEM_SCOPE, "autoscale_requests_with_reader")
TARGET_EVENTS_PER_SECOND = 10
LOW, HIGH = 6, 60
"""Events per second: well below the target, then ten times that (above 5 x target: an UP on the 2-minute rate)."""
KEYS = [f"key{i:03d}" for i in range(100)]


@dataclass
class Rig:
    clock: ManualClock
    recorder: SegmentStatsRecorder
    scaler: AutoScaler
    manager: StreamManager
    writer: EventStreamWriter[str]
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KEYS, 0))
    counts: list[int] = field(default_factory=list)
    """The number of active segments after every tick."""

    async def segments(self) -> int:
        return len(await self.manager.get_current_segments(SCOPE, STREAM))

    async def tick(self, events_per_second: int) -> int:
        """One statistics tick of traffic spread over the keys, then the controller's poll."""
        tick = self.recorder.config.tick
        total = round(events_per_second * tick)
        start = sum(self.written.values())
        batches: dict[str, list[str]] = {}
        for n in range(start, start + total):
            key = KEYS[n % len(KEYS)]
            batches.setdefault(key, []).append(f"{key}:{self.written[key]}")
            self.written[key] += 1
        for key, events in batches.items():
            await self.writer.write_events(events, routing_key=key)
        await self.writer.flush()
        self.clock.advance(tick)
        await self.recorder.tick()
        await self.scaler.poll_once()
        self.counts.append(await self.segments())
        return self.counts[-1]

    async def run_until(self, events_per_second: int, wanted: int, max_seconds: float) -> None:
        ticks = round(max_seconds / self.recorder.config.tick)
        for _ in range(ticks):
            if await self.tick(events_per_second) == wanted:
                return
        raise AssertionError(f"{STREAM} did not reach {wanted} segments within {max_seconds} s of manual time "
                             f"at {events_per_second} events/s (counts: {self.counts[-20:]})")

    async def run_for(self, events_per_second: int, seconds: float) -> None:
        for _ in range(round(seconds / self.recorder.config.tick)):
            await self.tick(events_per_second)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = ManualClock(start_time=1_800_000_000.0)
    store = await open_segment_store(tmp_path, 2, durable=False)
    tables = TableStore(store)
    recorder = SegmentStatsRecorder(clock, TableScaleReporter(tables, REQUESTS_TABLE),
                                    policy_lookup=store_policy_lookup(store))
    server = WireServer(store, tables, stats=recorder)
    port = await server.start(HOST, 0)
    service = ControllerService(HOST, port, host=HOST, port=0, ops=SegmentHelper(HOST, port))
    try:
        await service.start()
        assert service.controller is not None
        scaler = AutoScaler(service.controller, clock, table=REQUESTS_TABLE)
        async with StreamManager(f"tcp://{HOST}:{service.port}") as manager:
            await manager.create_scope(SCOPE)
            policy = ScalingPolicy.by_event_rate(TARGET_EVENTS_PER_SECOND, 2, 1)
            assert await manager.create_stream(SCOPE, STREAM, StreamConfiguration(scaling=policy))
            writer = manager.create_writer(SCOPE, STREAM, StringSerializer())
            yield Rig(clock, recorder, scaler, manager, writer)
    finally:
        await service.stop()
        await server.stop()
        await store.close()


@contextlib.asynccontextmanager
async def reading(reader: EventStreamReader[str]) -> AsyncIterator[list[tuple[int, str]]]:
    """Reads in the background, into the yielded list of (segment id, event), until the block ends."""
    received: list[tuple[int, str]] = []

    async def loop() -> None:
        while True:
            for read in await reader.read_events(timeout=0.2):
                if read.event is not None and read.segment is not None:
                    received.append((read.segment.segment_id, read.event))

    task = asyncio.create_task(loop())
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_split_and_merge_back_lose_and_reorder_nothing_for_a_reader(rig: Rig) -> None:
    group = await rig.manager.create_reader_group(
        SCOPE, "throughout", ReaderGroupConfig.for_streams(SCOPE, STREAM, group_refresh_time=0.2))
    reader = await group.create_reader("r", StringSerializer())
    async with reading(reader) as received:
        await rig.run_for(LOW, 600)
        await rig.run_until(HIGH, 2, 600)
        read_before_split = len(received)
        split = [s.segment_id for s in await rig.manager.get_current_segments(SCOPE, STREAM)]
        await rig.run_until(LOW, 1, 3600)
        await rig.run_for(LOW, 60)
        (merged,) = [s.segment_id for s in await rig.manager.get_current_segments(SCOPE, STREAM)]
        total = sum(rig.written.values())

        async def everything_read() -> None:
            while len(received) < total:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(everything_read(), 30)
    await reader.close()

    ones, twos = rig.counts.index(2), rig.counts.count(2)
    assert ones > 600 / rig.recorder.config.tick, "no split at the low rate"
    assert rig.counts == [1] * ones + [2] * twos + [1] * (len(rig.counts) - ones - twos), \
        "split once into two, merged back once into one"
    assert rig.scaler.scales_started == 2
    assert read_before_split > 0, "the reader read while the writer wrote"
    assert {segment for segment, _ in received} == {0, *split, merged}, "the reader read every epoch"
    per_key: dict[str, list[int]] = {}
    for _segment, event in received:
        key, seq = event.split(":")
        per_key.setdefault(key, []).append(int(seq))
    assert len(received) == total
    assert per_key == {key: list(range(count)) for key, count in rig.written.items()}
