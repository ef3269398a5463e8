"""Load under failures, and the check users make: a writer that records every acknowledged event and when, and a
reader that proves every acknowledged event was read exactly once, in per-key order.

Used by the cluster failover tests and ``scripts/cluster_failover.py``; events are ``k<key>:<seq>`` over ``KEYS``
routing keys, so per-key order can be checked from the bytes alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from anabranch.client.config import ScalingPolicy, StreamConfiguration
from anabranch.client.reader_group import ReaderGroupConfig
from anabranch.client.stream_manager import StreamManager
from anabranch.testing.assertions import assert_exactly_once, assert_per_key_order

KEYS = 12


def event(key: int, seq: int) -> bytes:
    return b"k%d:%d" % (key, seq)


def parse(data: bytes) -> tuple[int, int]:
    key, seq = data.decode().split(":")
    return int(key[1:]), int(seq)


@dataclass
class LoadWriter:
    """Writes events round-robin over ``KEYS`` routing keys at about ``rate`` events/s, until stopped; records the
    time of every acknowledgement and every failure."""

    manager: StreamManager
    scope: str
    stream: str
    rate: float = 400.0
    sent: int = 0
    sent_at: dict[bytes, float] = field(default_factory=dict)
    acked: dict[bytes, float] = field(default_factory=dict)
    failed: list[BaseException] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        writer = self.manager.create_writer(self.scope, self.stream)
        pending: set[asyncio.Future[None]] = set()
        seq = 0
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                key = seq % KEYS
                data = event(key, seq // KEYS)
                self.sent_at[data] = time.monotonic()
                future = await writer.write_event(data, routing_key=f"key-{key}")
                future.add_done_callback(functools.partial(self._done, data))
                pending.add(future)
                future.add_done_callback(pending.discard)
                seq += 1
                self.sent = seq
                ahead = seq / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if pending:
                await asyncio.wait(pending, timeout=120)
        finally:
            await writer.close(flush=False)

    def _done(self, data: bytes, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            self.acked[data] = time.monotonic()
        else:
            self.failed.append(exc)

    async def wait_acked(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.acked)} of {count} events acknowledged after {timeout} s "
                                   f"({len(self.failed)} failed: {self.failed[:1]})")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop writing and wait (bounded) until every event sent is acknowledged or failed."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 150)
        unsettled = self.sent - len(self.acked) - len(self.failed)
        assert unsettled == 0, f"{unsettled} of {self.sent} events neither acknowledged nor failed"

    def first_ack_after(self, moment: float) -> float | None:
        """When the first event written after ``moment`` was acknowledged (None if none was)."""
        later = [t for data, t in self.acked.items() if self.sent_at[data] > moment]
        return min(later) if later else None


async def new_stream(manager: StreamManager, segments: int = 4) -> tuple[str, str]:
    scope = f"fo-{uuid.uuid4().hex[:8]}"
    await manager.create_scope(scope)
    await manager.create_stream(scope, "load", StreamConfiguration(scaling=ScalingPolicy.fixed(segments)))
    return scope, "load"


@dataclass
class LoadReader:
    """One reader of a new reader group on the stream, reading in the background from the start, so a test can
    check that a reader group goes on through a failure."""

    manager: StreamManager
    scope: str
    stream: str
    got: list[bytes] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = ReaderGroupConfig.for_streams(self.scope, self.stream, group_refresh_time=0.1)
        group = await self.manager.create_reader_group(self.scope, f"live-{uuid.uuid4().hex[:6]}", config)
        reader = await group.create_reader("live")
        self._task = asyncio.get_running_loop().create_task(self._run(reader))

    async def _run(self, reader: Any) -> None:
        try:
            while True:
                read = await reader.read_next_event(timeout=0.5)
                if read.event is not None:
                    self.got.append(read.event)
        finally:
            await reader.close()

    async def wait_for(self, expected: set[bytes], timeout: float = 120.0) -> list[bytes]:
        """Wait until every ``expected`` event was read (then 2 s more, to catch duplicates); stop; return all."""
        assert self._task is not None
        deadline = time.monotonic() + timeout
        while not expected <= set(self.got):
            if self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                missing = expected - set(self.got)
                raise AssertionError(f"{len(missing)} acknowledged events not read after {timeout} s")
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return list(self.got)


async def read_everything(manager: StreamManager, scope: str, stream: str, expected: set[bytes],
                          timeout: float = 120.0) -> list[bytes]:
    """Read the stream from its head with a new reader group until every ``expected`` event arrived (then a little
    longer, to catch duplicates); returns everything read, in order of arrival."""
    group = await manager.create_reader_group(scope, f"check-{uuid.uuid4().hex[:6]}",
                                              ReaderGroupConfig.for_streams(scope, stream, group_refresh_time=0.1))
    reader = await group.create_reader("checker")
    got: list[bytes] = []
    seen: set[bytes] = set()
    deadline = time.monotonic() + timeout
    quiet_until: float | None = None
    try:
        while time.monotonic() < deadline:
            read = await reader.read_next_event(timeout=0.5)
            if read.event is not None:
                got.append(read.event)
                seen.add(read.event)
            if quiet_until is None and expected <= seen:
                quiet_until = time.monotonic() + 2.0
            if quiet_until is not None and time.monotonic() > quiet_until:
                break
    finally:
        await reader.close()
    missing = expected - seen
    assert not missing, f"{len(missing)} acknowledged events never read, e.g. {sorted(missing)[:5]}"
    return got


def check_exactly_once_in_key_order(got: list[bytes], acked: set[bytes]) -> None:
    """Every acked event read exactly once (``got`` may hold events whose ack was lost), each key's in order."""
    assert_exactly_once(sorted(acked, key=parse), got)
    assert_per_key_order(got, key=lambda data: parse(data)[0], sequence=lambda data: parse(data)[1])
