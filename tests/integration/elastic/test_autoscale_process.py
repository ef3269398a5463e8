"""Auto-scaling end to end through a real ``anabranch standalone`` with compressed time (spec §5).

A stream with an event-rate policy splits when a writer pushes far above its target, and its successors merge
back once the writer stops (their statistics expire: silent DOWN requests, cold segments, a merge). The
successors get a little traffic below the split threshold first, so that they report at least once (a segment
that never reported never expires, as in Pravega).
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from pathlib import Path

import grpc
import pytest

from anabranch.client.connection import RawConnection, next_request_id
from anabranch.model.names import qualified_segment_name
from anabranch.protocol import commands as c
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from anabranch.testing.processes import HOST, Standalone

pytestmark = pytest.mark.process

TIME_SCALE = "240"
TARGET_EVENTS_PER_SECOND = 10
EVENT = struct.pack(">ii", 0, 8) + b"autoscal"


async def current_segments(stub: pb_grpc.ControllerServiceStub, scope: str, stream: str) -> list[int]:
    reply = await stub.getCurrentSegments(pb.StreamInfo(scope=scope, stream=stream), timeout=10)
    return [r.segmentId.segmentId for r in reply.segmentRanges]


async def write_round(conn: RawConnection, writers: dict[int, tuple[uuid.UUID, int]], scope: str, stream: str,
                      segments: list[int], events: int) -> None:
    """One block of ``events`` events to each segment (set up on first use; sealed segments are skipped)."""
    for seg_id in segments:
        name = qualified_segment_name(scope, stream, seg_id)
        if seg_id not in writers:
            writer_id = uuid.uuid4()
            setup = await conn.request(c.SetupAppend(next_request_id(), writer_id, name, ""), timeout=10)
            if not isinstance(setup, c.AppendSetup):
                continue
            writers[seg_id] = (writer_id, setup.last_event_number)
        writer_id, last = writers[seg_id]
        data = EVENT * events
        reply = await conn.request(
            c.AppendBlockEnd(writer_id, len(data), data, events, last + events, next_request_id()), timeout=10)
        if isinstance(reply, c.DataAppended):
            writers[seg_id] = (writer_id, last + events)


async def wait_for_count(stub: pb_grpc.ControllerServiceStub, scope: str, stream: str, wanted: int,
                         timeout: float, write: bool, conn: RawConnection,
                         writers: dict[int, tuple[uuid.UUID, int]]) -> list[int]:
    async def poll() -> list[int]:
        while True:
            segments = await current_segments(stub, scope, stream)
            if len(segments) == wanted:
                return segments
            if write:
                await write_round(conn, writers, scope, stream, segments, 20)
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


async def test_stream_splits_under_load_and_merges_back_when_idle(tmp_path: Path) -> None:
    server = Standalone(tmp_path / "data", None, None, "--autoscale-time-scale", TIME_SCALE)
    server.start()
    try:
        async with grpc.aio.insecure_channel(f"{HOST}:{server.controller_port}") as channel:
            stub = pb_grpc.ControllerServiceStub(channel)
            scope, stream = "elastic", "hot"
            await stub.createScope(pb.ScopeInfo(scope=scope), timeout=10)
            policy = pb.ScalingPolicy(scaleType=pb.ScalingPolicy.BY_RATE_IN_EVENTS_PER_SEC,
                                      targetRate=TARGET_EVENTS_PER_SECOND, scaleFactor=2, minNumSegments=1)
            status = await stub.createStream(pb.StreamConfig(streamInfo=pb.StreamInfo(scope=scope, stream=stream),
                                                             scalingPolicy=policy), timeout=10)
            assert status.status == pb.CreateStreamStatus.SUCCESS
            conn = await RawConnection.connect(HOST, server.segmentstore_port)
            try:
                writers: dict[int, tuple[uuid.UUID, int]] = {}
                split = await wait_for_count(stub, scope, stream, 2, 60, True, conn, writers)
                loop = asyncio.get_running_loop()
                keep_writing_until = loop.time() + 1.0
                while loop.time() < keep_writing_until:
                    await write_round(conn, writers, scope, stream, split, 2)
                    await asyncio.sleep(0.1)
                merged = await wait_for_count(stub, scope, stream, 1, 60, False, conn, writers)
            finally:
                await conn.close()
            assert merged[0] >> 32 == 2
    finally:
        server.kill()
