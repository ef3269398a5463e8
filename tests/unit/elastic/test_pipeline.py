"""The auto-scale pipeline in one process, on a ManualClock: statistics → request table (TableStore) → the
controller's AutoScaler (over a real wire connection) → the scale workflow, and back down when idle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from anabranch.clock import ManualClock
from anabranch.controller.autoscale import AutoScaler
from anabranch.controller.epochs import SegmentRecord
from anabranch.controller.facade import Controller
from anabranch.controller.records import ScalingConfig, StreamConfiguration
from anabranch.controller.segment_helper import SegmentHelper
from anabranch.model.names import qualified_segment_name
from anabranch.segmentstore.server import WireServer
from anabranch.segmentstore.stats import SegmentStatsRecorder, TableScaleReporter, store_policy_lookup
from anabranch.segmentstore.store import open_segment_store
from anabranch.segmentstore.tables import TableStore


@dataclass
class Pipeline:
    clock: ManualClock
    controller: Controller
    recorder: SegmentStatsRecorder
    scaler: AutoScaler

    async def active(self) -> list[SegmentRecord]:
        view = await self.controller.ctx.view("sc", "st")
        return await self.controller.ctx.active_segments(view)

    async def run(self, seconds: float, events_per_second: float) -> list[SegmentRecord]:
        """Traffic spread evenly over the active segments, one tick at a time; the controller polls each tick."""
        tick = self.recorder.config.tick
        active = await self.active()
        for _ in range(round(seconds / tick)):
            for seg in active:
                events = round(events_per_second * tick / len(active))
                if events:
                    self.recorder.record_append(qualified_segment_name("sc", "st", seg.id), events * 10, events)
            self.clock.advance(tick)
            await self.recorder.tick()
            if await self.scaler.poll_once():
                active = await self.active()
        return active


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    store = await open_segment_store(tmp_path, 2, durable=False)
    tables = TableStore(store)
    server = WireServer(store, tables)
    port = await server.start("127.0.0.1", 0)
    ops = SegmentHelper("127.0.0.1", port)
    try:
        controller = Controller(ops, "127.0.0.1", port)
        await controller.bootstrap()
        assert await controller.streams.create_scope("sc") == "SUCCESS"
        config = StreamConfiguration(ScalingConfig(2, 10, 2, 1))
        assert await controller.streams.create_stream("sc", "st", config) == "SUCCESS"
        clock = ManualClock(start_time=1_800_000_000.0)
        recorder = SegmentStatsRecorder(clock, TableScaleReporter(tables), policy_lookup=store_policy_lookup(store))
        yield Pipeline(clock, controller, recorder, AutoScaler(controller, clock))
    finally:
        await ops.close()
        await server.stop()
        await store.close()


async def test_split_under_load_then_merge_when_idle(pipeline: Pipeline) -> None:
    assert len(await pipeline.run(600, 100)) == 1
    split = await pipeline.run(130, 100)
    assert [(s.key_start, s.key_end) for s in split] == [(0.0, 0.5), (0.5, 1.0)]
    assert await pipeline.run(300, 5) == split
    assert await pipeline.run(1000, 0) == split
    (merged,) = await pipeline.run(300, 0)
    assert (merged.key_start, merged.key_end, merged.creation_epoch) == (0.0, 1.0, 2)
    assert pipeline.scaler.scales_started == 2
