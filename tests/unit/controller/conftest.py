"""Fixtures: a ControllerService over the in-memory segment store, reached through a real gRPC channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from anabranch.controller.segment_helper_memory import InMemorySegmentStore
from anabranch.controller.service import ControllerService
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from tests.unit.controller.helpers import FakeClock, Harness


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    memory = InMemorySegmentStore()
    clock = FakeClock()
    service = ControllerService("127.0.0.1", 12345, host="127.0.0.1", port=0, ops=memory, monotonic=clock,
                                lease_check_interval=3600)
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield Harness(service, memory, pb_grpc.ControllerServiceStub(channel), clock)
    finally:
        await channel.close()
        await service.stop()
