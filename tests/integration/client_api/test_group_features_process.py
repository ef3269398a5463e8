"""Reader-group lag (per group and per reader) and notifications through a real standalone, across a scale."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from anabranch.client import (
    EndOfDataNotification,
    Lag,
    ReaderGroupConfig,
    ScalingPolicy,
    SegmentNotification,
    StreamConfiguration,
    StreamManager,
)
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process
EVENT = b"0123456789"
SIZE = len(EVENT) + 8


async def _read(reader: Any, count: int) -> None:
    got = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while got < count:
        assert loop.time() < deadline, f"read {got} of {count}"
        read = await reader.read_next_event(timeout=1)
        got += read.event is not None


async def _notified(notes: list[Any], segments: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any(isinstance(n, SegmentNotification) and n.segments == segments for n in notes):
        assert loop.time() < deadline, f"the group's segment count {segments} was never notified: {notes}"
        await asyncio.sleep(0.02)


async def test_exact_lag_and_notifications_across_a_scale(shared_standalone: Standalone) -> None:
    scope = f"lag{uuid.uuid4().hex[:8]}"
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, "s", StreamConfiguration(ScalingPolicy.fixed(2)))
        writer = manager.create_writer(scope, "s")
        for i in range(20):
            await writer.write_event(EVENT, routing_key=f"k{i}")
        await writer.flush()
        config = ReaderGroupConfig.for_streams(scope, "s", group_refresh_time=0.1)
        group = await manager.create_reader_group(scope, "g", config)
        notes: list[Any] = []

        async def watch() -> None:
            async for note in group.notifications(poll_interval=0.02):
                notes.append(note)

        watcher = asyncio.create_task(watch())
        assert await group.lag() == Lag(20, 20 * SIZE)
        assert await group.lag(count_events=False) == Lag(-1, 20 * SIZE)

        reader = await group.create_reader("r1")
        await _read(reader, 5)
        reported = await reader.lag()
        assert reported == Lag(15, 15 * SIZE), "the reader's own lag is live"
        await asyncio.sleep(config.group_refresh_time)  # so the next read reports positions before its event
        await reader.read_next_event(timeout=1)
        assert await reader.lag() == Lag(14, 14 * SIZE)
        lags = await group.reader_lags()
        assert lags == {"r1": reported}
        group_lag = await group.lag()
        assert group_lag == reported

        await manager.scale_stream(scope, "s", [0], [(0.0, 0.25), (0.25, 0.5)])
        for i in range(10):
            await writer.write_event(EVENT, routing_key=f"k{i}")
        await writer.flush()
        before = (await group.lag()).events
        assert before == group_lag.events + 10, "successors not reached yet count in the group's lag"

        await _read(reader, before - 1)
        await _notified(notes, 3)  # the reader holds the successors now; the count is polled, so await it
        await manager.seal_stream(scope, "s")
        while not (await group.state()).is_finished:
            await reader.read_next_event(timeout=0.2)
        await asyncio.wait_for(watcher, 10)
        assert notes[0] == SegmentNotification(2, 0)
        assert isinstance(notes[-1], EndOfDataNotification)
        assert await group.lag() == Lag(0, 0)
        await reader.close()
