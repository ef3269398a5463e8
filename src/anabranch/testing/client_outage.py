"""A server outage under client load: kill -9 the standalone, wait, restart it on the same data and ports.

``run_outage`` keeps one default-configured ``EventStreamWriter`` writing numbered events (with routing keys)
and one reader of a reader group reading them, kills the standalone mid-load, leaves it down for
``outage`` seconds, starts it again, lets the load go on, then drains. It returns what a test checks
(acknowledged events, events read, failures) and the figures the docs quote: how long the clients waited
and how soon after the restart the first new ack and the first new read arrived. The same writer and
reader objects are used throughout: neither is recreated.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from dataclasses import dataclass, field

from anabranch.client import ClientConfig, ReaderGroupConfig, ScalingPolicy, StreamConfiguration, StreamManager
from anabranch.errors import AnabranchError
from anabranch.testing.processes import Standalone

WRITE_INTERVAL = 0.002
"""Seconds between writes: steady load, not a flood."""
READ_TIMEOUT = 0.5


@dataclass
class OutageResult:
    acked: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    read: list[int] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)
    longest_read: float = 0.0
    """Seconds the slowest ``read_events(timeout=READ_TIMEOUT)`` call took (the timeout holds during the outage)."""
    written: int = 0
    down_at: float = 0.0
    up_at: float = 0.0
    first_ack_after_restart: float | None = None
    first_read_after_restart: float | None = None

    @property
    def write_resume_seconds(self) -> float | None:
        """Seconds from the restarted server listening to the first ack of an event written during the outage."""
        return None if self.first_ack_after_restart is None else self.first_ack_after_restart - self.up_at

    @property
    def read_resume_seconds(self) -> float | None:
        return None if self.first_read_after_restart is None else self.first_read_after_restart - self.up_at

    @property
    def duplicates(self) -> int:
        return len(self.read) - len(set(self.read))

    @property
    def lost(self) -> set[int]:
        """Acknowledged events never read."""
        return self.acked - set(self.read)


async def run_outage(server: Standalone, outage: float, *, before: float = 1.0, after: float = 2.0,
                     drain_timeout: float = 60.0, config: ClientConfig | None = None) -> OutageResult:
    """Kill ``server`` (running) after ``before`` s of load, keep it down ``outage`` s, restart, load ``after`` s.

    ``config`` defaults to ``ClientConfig`` with only the controller URI set. A retriable error out of a read
    is recorded in ``read_errors`` and reading goes on with the same reader.
    """
    result = OutageResult()
    scope, stream = f"outage{uuid.uuid4().hex[:8]}", "load"
    loop = asyncio.get_running_loop()
    stop_writing = asyncio.Event()
    config = config or ClientConfig(server.controller_uri)
    async with StreamManager(config) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(2)))
        group = await manager.create_reader_group(scope, "g", ReaderGroupConfig.for_streams(scope, stream))
        reader = await group.create_reader("r1")
        writer = manager.create_writer(scope, stream)

        def on_ack(number: int, future: asyncio.Future[None]) -> None:
            if future.cancelled():
                result.failed[number] = "cancelled"
            elif future.exception() is not None:
                result.failed[number] = repr(future.exception())
            else:
                result.acked.add(number)
                if result.up_at and result.first_ack_after_restart is None and number > written_at_kill:
                    result.first_ack_after_restart = time.monotonic()

        async def write() -> None:
            number = 0
            while not stop_writing.is_set():
                try:
                    future = await writer.write_event(str(number).encode(), routing_key=f"k{number % 16}")
                except Exception as exc:  # a write refused at once counts as failed, and writing goes on
                    result.failed[number] = repr(exc)
                else:
                    future.add_done_callback(functools.partial(on_ack, number))
                number += 1
                result.written = number
                await asyncio.sleep(WRITE_INTERVAL)

        async def read() -> None:
            while True:
                started = time.monotonic()
                try:
                    batch = await reader.read_events(timeout=READ_TIMEOUT)
                except AnabranchError as exc:
                    if not exc.retriable:
                        raise
                    result.read_errors.append(repr(exc))
                    continue
                finally:
                    result.longest_read = max(result.longest_read, time.monotonic() - started)
                for item in batch:
                    if item.event is not None:
                        result.read.append(int(item.event))
                        if result.up_at and result.first_read_after_restart is None:
                            result.first_read_after_restart = time.monotonic()

        written_at_kill = -1
        writing = loop.create_task(write())
        reading = loop.create_task(read())
        try:
            await asyncio.sleep(before)
            written_at_kill = result.written
            server.kill()
            result.down_at = time.monotonic()
            await asyncio.sleep(outage)
            await loop.run_in_executor(None, server.start)
            result.up_at = time.monotonic()
            await asyncio.sleep(after)
            stop_writing.set()
            await asyncio.wait_for(writing, drain_timeout)
            await asyncio.wait_for(writer.flush(), drain_timeout)
            deadline = loop.time() + drain_timeout
            while result.lost and loop.time() < deadline and not reading.done():
                await asyncio.sleep(0.05)
        finally:
            stop_writing.set()
            for task in (writing, reading):
                task.cancel()
            await asyncio.gather(writing, reading, return_exceptions=True)
            await reader.close()
            await writer.close(flush=False)
        if reading.done() and not reading.cancelled() and reading.exception() is not None:
            raise reading.exception()  # type: ignore[misc]
    return result
