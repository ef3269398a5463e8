"""Retention end to end through a real ``anabranch standalone`` with compressed time (the retention job runs
every 1800 s / 900 = 2 s).

- Size- and time-based policies move the head stream cut once enough data (or time) lies behind a recorded
  cut; reads below the head get ``SegmentIsTruncated`` and a reader group that sat at the old head skips to the
  new one. A kill -9 and restart keeps the head (the segment store's truncation and the controller's record),
  and retention carries on from its recorded cuts.
- Consumption-based retention: a subscriber reader group (``retentionType`` MANUAL) holds the head back at its
  acknowledged cut; once it acknowledges further, truncation follows, never passing the acknowledgement.

Every event is ``f"{i:06d}"`` (6 bytes + an 8-byte header = 14 bytes), so every cut lies on a multiple of 14 and
the event at offset ``o`` is number ``o // 14``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from anabranch.client import (
    ClientConfig,
    EventStreamWriter,
    RetentionPolicy,
    StreamConfiguration,
    StreamManager,
    StringSerializer,
)
from anabranch.client.connection import RawConnection, next_request_id
from anabranch.client.reader_group import ReaderGroupConfig
from anabranch.model.names import qualified_segment_name
from anabranch.model.stream_cut import StreamCut
from anabranch.protocol import commands as c
from anabranch.testing.processes import HOST, Standalone

pytestmark = pytest.mark.process

TIME_SCALE = "900"
EVENT_SIZE = 14
BATCH = 20
SCOPE = "retained"


def numbered(start: int, count: int) -> list[str]:
    return [f"{i:06d}" for i in range(start, start + count)]


async def head(manager: StreamManager, stream: str) -> int:
    """The head offset of the stream's single segment (0)."""
    cut = await manager.get_head_stream_cut(SCOPE, stream)
    assert set(cut.positions) == {0}, cut
    return cut.positions[0]


async def all_moved(manager: StreamManager, beyond: dict[str, int]) -> bool:
    """True once every stream's head lies beyond the given offset."""
    return all([await head(manager, s) > offset for s, offset in beyond.items()])


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float) -> None:
    async def poll() -> None:
        while not await condition():
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), timeout)


class Feeder:
    """Writes numbered events in batches to streams of ``SCOPE`` in the background until stopped."""

    def __init__(self, manager: StreamManager, streams: list[str]) -> None:
        self.writers: dict[str, EventStreamWriter[str]] = {
            s: manager.create_writer(SCOPE, s, StringSerializer()) for s in streams}
        self.written = dict.fromkeys(streams, 0)

    async def write_batch(self) -> None:
        for stream, writer in self.writers.items():
            await (await writer.write_events(numbered(self.written[stream], BATCH), routing_key="k"))
            self.written[stream] += BATCH

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Feeder]:
        async def loop() -> None:
            while True:
                await self.write_batch()
                await asyncio.sleep(0.2)

        task = asyncio.create_task(loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for writer in self.writers.values():
                await writer.flush()


async def read_at(segment_store_port: int, stream: str, offset: int) -> c.Reply:
    conn = await RawConnection.connect(HOST, segment_store_port)
    try:
        name = qualified_segment_name(SCOPE, stream, 0)
        return await conn.request(c.ReadSegment(name, offset, 1024, "", next_request_id()), timeout=10)
    finally:
        await conn.close()


async def wait_truncated_at(port: int, stream: str, at: int) -> None:
    """Wait (bounded) until a read below ``at`` gets ``SegmentIsTruncated`` with the head ``at``: the controller
    records a truncation before it truncates the segments, so its head can lead the segment store's briefly."""
    async def truncated() -> bool:
        reply = await read_at(port, stream, 0)
        if isinstance(reply, c.SegmentIsTruncated) and reply.start_offset != 0:
            assert reply.start_offset == at, reply
            return True
        return False

    await wait_until(truncated, 10)


async def test_size_and_time_retention_truncate_and_survive_a_crash(tmp_path: Path) -> None:
    server = Standalone(tmp_path / "data", None, None, "--autoscale-time-scale", TIME_SCALE)
    server.start()
    try:
        streams = {"bysize": RetentionPolicy.by_size(1000), "bytime": RetentionPolicy.by_time(3000)}
        async with StreamManager(ClientConfig(server.controller_uri)) as manager:
            await manager.create_scope(SCOPE)
            for stream, policy in streams.items():
                assert await manager.create_stream(SCOPE, stream, StreamConfiguration(retention=policy))
            group = await manager.create_reader_group(SCOPE, "late", ReaderGroupConfig.for_streams(SCOPE, "bysize"))
            feeder = Feeder(manager, list(streams))
            async with feeder.running():
                await wait_until(lambda: all_moved(manager, dict.fromkeys(streams, 0)), 45)
            heads = {s: await head(manager, s) for s in streams}
            for stream, offset in heads.items():
                assert offset % EVENT_SIZE == 0 and 0 < offset < feeder.written[stream] * EVENT_SIZE
                await wait_truncated_at(server.segmentstore_port, stream, offset)

            reader = await group.create_reader("r", StringSerializer())
            first = await reader.read_next_event(timeout=10)
            assert first.event is not None and first.offset >= heads["bysize"]
            assert int(first.event) == first.offset // EVENT_SIZE
            following = [(await reader.read_next_event(timeout=10)).event for _ in range(30)]
            assert following == numbered(int(first.event) + 1, 30)
            await reader.close()
            written = dict(feeder.written)
            heads = {s: await head(manager, s) for s in streams}

        server.kill()
        server.start()
        async with StreamManager(ClientConfig(server.controller_uri)) as manager:
            assert {s: await head(manager, s) for s in streams} == heads
            for stream, offset in heads.items():
                await wait_truncated_at(server.segmentstore_port, stream, offset)
            feeder = Feeder(manager, list(streams))
            feeder.written = written
            async with feeder.running():
                await wait_until(lambda: all_moved(manager, heads), 45)
    finally:
        server.kill()


async def test_subscriber_holds_truncation_back_to_its_acknowledged_cut(tmp_path: Path) -> None:
    server = Standalone(tmp_path / "data", None, None, "--autoscale-time-scale", TIME_SCALE)
    server.start()
    try:
        async with StreamManager(ClientConfig(server.controller_uri)) as manager:
            await manager.create_scope(SCOPE)
            for stream in ("plain", "subscribed"):
                config = StreamConfiguration(retention=RetentionPolicy.by_size(1000))
                assert await manager.create_stream(SCOPE, stream, config)
            group = await manager.create_reader_group(
                SCOPE, "sub", ReaderGroupConfig.for_streams(SCOPE, "subscribed", retention="manual"))
            assert await manager.controller.list_subscribers(SCOPE, "subscribed") == [f"{SCOPE}/sub"]

            async def acknowledge(offset: int) -> None:
                await group.update_retention_stream_cut([StreamCut(SCOPE, "subscribed", {0: offset})])

            async def reaches(acknowledged: int) -> bool:
                offset = await head(manager, "subscribed")
                assert offset <= acknowledged, f"truncated at {offset}, beyond the acknowledged {acknowledged}"
                return offset == acknowledged

            feeder = Feeder(manager, ["plain", "subscribed"])
            async with feeder.running():
                await wait_until(lambda: all_moved(manager, {"plain": 0}), 45)
                assert await head(manager, "subscribed") == 0
                first = 50 * EVENT_SIZE
                await acknowledge(first)
                await wait_until(lambda: reaches(first), 45)
                second = feeder.written["subscribed"] * EVENT_SIZE
                await acknowledge(second)
                await wait_until(lambda: reaches(second), 45)
            await wait_truncated_at(server.segmentstore_port, "subscribed", second)
    finally:
        server.kill()
