"""The rig of the testing-kit tests: an in-process standalone (segment store + controller on free ports) whose
every timer follows one ``ManualClock``, for the clock and fault-injection tests of the testing kit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from anabranch.client import ClientConfig, StreamManager
from anabranch.clock import Clock, ManualClock
from anabranch.controller.service import ControllerService
from anabranch.segmentstore.service import SegmentStoreService

HOST = "127.0.0.1"


@dataclass
class Clocked:
    clock: Clock
    segment_store: SegmentStoreService
    controller: ControllerService
    manager: StreamManager

    @property
    def controller_uri(self) -> str:
        return f"tcp://{HOST}:{self.controller.port}"

    def client_config(self, **overrides: object) -> ClientConfig:
        return ClientConfig(self.controller_uri, clock=self.clock, **overrides)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def clocked_standalone(data_dir: Path, clock: Clock | None = None) -> AsyncIterator[Clocked]:
    """A segment store and a controller on free ports, every timer of both and of the client on one clock (a new
    manual one by default)."""
    clock = clock or ManualClock(start_time=1_800_000_000.0)
    segment_store = SegmentStoreService(data_dir, HOST, 0, container_count=2, clock=clock)
    await segment_store.start()
    controller = ControllerService(HOST, segment_store.port, host=HOST, port=0, clock=clock)
    try:
        await controller.start()
        config = ClientConfig(f"tcp://{HOST}:{controller.port}", clock=clock)
        async with StreamManager(config) as manager:
            yield Clocked(clock, segment_store, controller, manager)
    finally:
        await controller.stop()
        await segment_store.stop()
