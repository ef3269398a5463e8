"""Watermarks: upper bounds of writer positions, completed stream cuts, the active window, and the job."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anabranch.clock import ManualClock
from anabranch.controller.epochs import EpochRecord, SegmentRecord
from anabranch.controller.errors import NoSuchSegmentError
from anabranch.controller.facade import Controller
from anabranch.controller.records import StreamConfiguration
from anabranch.controller.segment_helper_memory import InMemorySegmentStore
from anabranch.controller.watermarks import (
    Watermark,
    WatermarkJob,
    WatermarkWindow,
    WireAppender,
    WriterMark,
    complete_cut,
    compute_watermark,
    upper_bound,
)
from anabranch.errors import DataCorruptionError
from anabranch.model.names import segment_id
from anabranch.segmentstore.server import WireServer
from anabranch.segmentstore.store import open_segment_store
from anabranch.segmentstore.tables import TableStore

# epoch 0: A [0, .5), B [.5, 1); epoch 1: B split into C [.5, .75), D [.75, 1)
A, B = SegmentRecord(0, 0, 0, 0.0, 0.5), SegmentRecord(1, 0, 0, 0.5, 1.0)
C, D = SegmentRecord(2, 1, 0, 0.5, 0.75), SegmentRecord(3, 1, 0, 0.75, 1.0)
SEGS = {s.id: s for s in (A, B, C, D)}
EPOCHS = {0: EpochRecord(0, 0, (A, B), 0), 1: EpochRecord(1, 1, (A, C, D), 1)}


def test_upper_bound_keeps_highest_offsets_and_drops_predecessors() -> None:
    assert upper_bound([{A.id: 5, B.id: 7}, {A.id: 9}], SEGS) == {A.id: 9, B.id: 7}
    assert upper_bound([{B.id: 7}, {C.id: 1}], SEGS) == {C.id: 1}
    assert upper_bound([{C.id: 1}, {B.id: 70}], SEGS) == {C.id: 1}


def test_complete_cut_fills_gaps_from_the_highest_epoch() -> None:
    assert complete_cut({A.id: 4, C.id: 1}, SEGS, EPOCHS, None) == {A.id: 4, C.id: 1, D.id: 0}
    assert complete_cut({A.id: 4}, SEGS, EPOCHS, None) == {A.id: 4, B.id: 0}
    previous = Watermark(1, 2, ((A.id, 0.0, 0.5, 10), (B.id, 0.5, 1.0, 20)))
    assert complete_cut({A.id: 4, C.id: 1}, SEGS, EPOCHS, previous) == {A.id: 10, C.id: 1, D.id: 0}
    assert complete_cut({}, SEGS, EPOCHS, None) == {A.id: 0, C.id: 0, D.id: 0}


def test_compute_watermark_bounds_time_and_position() -> None:
    marks = [WriterMark(100, {A.id: 5}), WriterMark(130, {B.id: 8})]
    mark = compute_watermark(marks, None, SEGS, EPOCHS)
    assert mark == Watermark(100, 130, ((A.id, 0.0, 0.5, 5), (B.id, 0.5, 1.0, 8)))
    assert compute_watermark(marks, mark, SEGS, EPOCHS) is None
    assert compute_watermark([], None, SEGS, EPOCHS) is None


def test_watermark_codec() -> None:
    mark = Watermark(1, 2, ((segment_id(3, 1), 0.25, 1.0, 42),))
    assert Watermark.decode(mark.encode()) == mark
    event = mark.to_event()
    assert struct.unpack(">ii", event[:8]) == (0, len(event) - 8)
    with pytest.raises(DataCorruptionError):
        Watermark.decode(b'{"lowerTimeBound": 1}')


def test_silent_writer_stops_holding_watermarks_back() -> None:
    window = WatermarkWindow()
    emitted = []
    fast, slow = 100, 100
    for round_ in range(8):
        fast += 10
        if round_ < 2:
            slow += 10
        marks = [WriterMark(fast, {A.id: fast}), WriterMark(slow, {B.id: slow})]
        mark = window.next_watermark(marks, SEGS, EPOCHS)
        window.complete_iteration(mark)
        emitted.append(None if mark is None else mark.lower_time_bound)
    assert emitted[:2] == [110, 120]
    assert emitted[2] is None
    later = [m for m in emitted[3:] if m is not None]
    assert later and all(m > 120 for m in later) and later == sorted(later)


# --- the job against a controller over the in-memory segment store -----------------------------------

@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    c = Controller(InMemorySegmentStore(), "127.0.0.1", 12345)
    await c.bootstrap()
    assert await c.streams.create_scope("sc") == "SUCCESS"
    yield c


class Sink:
    def __init__(self, memory: InMemorySegmentStore, fail_first: bool = False) -> None:
        self.memory = memory
        self.events: list[tuple[str, bytes]] = []
        self.fail_first = fail_first

    async def __call__(self, segment: str, event: bytes, expected_offset: int) -> bool:
        if self.fail_first:
            self.fail_first = False
            return False
        assert (await self.memory.get_segment_info(segment)).length == expected_offset
        self.memory.append(segment, len(event))
        self.events.append((segment, event))
        return True


async def test_job_appends_watermarks_to_the_mark_stream(controller: Controller) -> None:
    memory = controller.ctx.ops
    assert isinstance(memory, InMemorySegmentStore)
    assert await controller.streams.create_stream("sc", "st", StreamConfiguration()) == "SUCCESS"
    clock = ManualClock()
    sink = Sink(memory, fail_first=True)
    job = WatermarkJob(controller, clock, sink, period=1.0)
    assert await job.process("sc", "st") is None
    assert await controller.writers.note_time("sc", "st", "w1", {0: 10}, 1000) == "SUCCESS"
    assert await controller.writers.note_time("sc", "st", "w2", {0: 30}, 1200) == "SUCCESS"
    assert await job.process("sc", "st") is None
    task = asyncio.create_task(job.run())
    try:
        await clock.wait_for_sleepers(1)
        clock.advance(1.0)
        await clock.wait_for_sleepers(1)
    finally:
        task.cancel()
    assert job.emitted == 1
    ((segment, event),) = sink.events
    assert segment == "sc/_MARKst/0.#epoch.0"
    assert Watermark.decode(event[8:]) == Watermark(1000, 1200, ((0, 0.0, 1.0, 30),))


async def test_wire_appender_appends_conditionally(tmp_path: Path) -> None:
    store = await open_segment_store(tmp_path, 1, durable=False)
    tables = TableStore(store)
    server = WireServer(store, tables)
    port = await server.start("127.0.0.1", 0)
    try:
        name = "sc/_MARKst/0.#epoch.0"
        await store.create_segment(name)
        append = WireAppender("127.0.0.1", port)
        first = Watermark(1, 2, ((0, 0.0, 1.0, 5),)).to_event()
        assert await append(name, first, 0)
        assert not await append(name, first, 0)
        assert await append(name, first, len(first))
        data = bytes((await store.read(name, 0, 1000)).data)
        assert data == first + first
        with pytest.raises(NoSuchSegmentError):
            await append("sc/_MARKst/9.#epoch.0", first, 0)
    finally:
        await server.stop()
        await store.close()
