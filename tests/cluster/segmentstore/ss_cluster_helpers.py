"""Helpers of the segment-store cluster tests: write the container map as the controller leader would, and talk to a
segment store over the wire (create segments, append with acks, read back, ask whether a container runs there)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from anabranch.client.connection import RawConnection, next_request_id
from anabranch.cluster.layout import ClusterPaths, ContainerMap
from anabranch.cluster.zk import ZkClient
from anabranch.errors import ConnectionFailedError
from anabranch.protocol.commands import (
    AppendBlockEnd,
    AppendSetup,
    CreateSegment,
    DataAppended,
    GetStreamSegmentInfo,
    ReadSegment,
    Reply,
    SegmentCreated,
    SegmentRead,
    SetupAppend,
    StreamSegmentInfo,
    WrongHost,
)
from anabranch.segmentstore.store import container_id_for

EVENT_HEADER = struct.Struct(">ii")


def event(payload: bytes) -> bytes:
    return EVENT_HEADER.pack(0, len(payload)) + payload


def parse_events(data: bytes) -> list[bytes]:
    events, position = [], 0
    while position < len(data):
        _, length = EVENT_HEADER.unpack_from(data, position)
        events.append(data[position + 8 : position + 8 + length])
        position += 8 + length
    return events


def segment_in(container_id: int, count: int, prefix: str = "sc/st") -> str:
    """A stream segment name held by ``container_id`` (of ``count``)."""
    for i in range(100_000):
        name = f"{prefix}/{i}.#epoch.0"
        if container_id_for(name, count) == container_id:
            return name
    raise AssertionError("no segment name found")


async def write_map(zk: ZkClient, paths: ClusterPaths, assignment: dict[str, Sequence[int]]) -> None:
    """Replace the container map (the next version), as the controller leader does."""
    found = await zk.get_or_none(paths.container_map)
    version = ContainerMap.decode(found[0]).version + 1 if found else 1
    data = ContainerMap({h: tuple(cs) for h, cs in assignment.items()}, version).encode()
    if found is None:
        await zk.create(paths.container_map, data)
    else:
        await zk.set(paths.container_map, data)


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout} s: {what}")
        await asyncio.sleep(interval)


async def ask(port: int, request: object, timeout: float = 10.0) -> Reply | None:
    """One request on a fresh connection; None when the segment store cannot be reached."""
    try:
        conn = await RawConnection.connect("127.0.0.1", port, timeout=timeout)
    except ConnectionFailedError:
        return None
    try:
        return await conn.request(request, timeout=timeout)  # type: ignore[arg-type]
    except ConnectionFailedError:
        return None
    finally:
        await conn.close()


async def serves(port: int, segment: str) -> bool:
    """The segment store on ``port`` runs the container of ``segment`` (and has recovered it)."""
    reply = await ask(port, GetStreamSegmentInfo(next_request_id(), segment, ""))
    return reply is not None and not isinstance(reply, WrongHost)


async def create_segment(port: int, segment: str) -> None:
    reply = await ask(port, CreateSegment(next_request_id(), segment))
    assert isinstance(reply, SegmentCreated), reply


class Writer:
    """One writer appending events to one segment and recording which were acknowledged."""

    def __init__(self, port: int, segment: str) -> None:
        self.port = port
        self.segment = segment
        self.writer_id = uuid.uuid4()
        self.acked: list[bytes] = []
        self._conn: RawConnection | None = None
        self._event_number = 0
        self._pending: dict[int, bytes] = {}
        self._acks = asyncio.Event()
        self.last_reply: Reply | None = None

    async def open(self) -> Reply:
        self._conn = await RawConnection.connect("127.0.0.1", self.port)
        self._conn.add_listener(self.writer_id, self._on_reply)
        reply = await self._conn.request(SetupAppend(next_request_id(), self.writer_id, self.segment, ""))
        if isinstance(reply, AppendSetup):
            self._event_number = max(reply.last_event_number, 0)
        return reply

    def _on_reply(self, reply: Reply) -> None:
        self.last_reply = reply
        if isinstance(reply, DataAppended):
            for number in sorted(n for n in self._pending if n <= reply.event_number):
                self.acked.append(self._pending.pop(number))
        self._acks.set()

    def send(self, payload: bytes) -> None:
        """Send one event (not waiting for its ack)."""
        assert self._conn is not None
        self._event_number += 1
        data = event(payload)
        self._pending[self._event_number] = payload
        self._conn.send(AppendBlockEnd(self.writer_id, len(data), data, 1, self._event_number, next_request_id()))

    async def append(self, payload: bytes, timeout: float = 10.0) -> bool:
        """Send one event and wait for its ack; False if the connection failed or another reply came."""
        try:
            self.send(payload)
        except ConnectionFailedError:
            return False
        number = self._event_number
        deadline = time.monotonic() + timeout
        while number in self._pending:
            if self._conn is None or self._conn.closed or not isinstance(self.last_reply, DataAppended | None):
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._acks.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acks.wait(), min(remaining, 0.2))
        return True

    def refused(self) -> bool:
        """The segment store closed the connection or answered something other than an ack."""
        return self._conn is None or self._conn.closed or not isinstance(self.last_reply, DataAppended | None)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


async def read_all(port: int, segment: str) -> bytes:
    """Every byte of the segment, read from the segment store on ``port``."""
    info = await ask(port, GetStreamSegmentInfo(next_request_id(), segment, ""))
    assert isinstance(info, StreamSegmentInfo), info
    data = bytearray()
    conn = await RawConnection.connect("127.0.0.1", port)
    try:
        while len(data) < info.write_offset:
            reply = await conn.request(ReadSegment(segment, len(data), 1024 * 1024, "", next_request_id()))
            assert isinstance(reply, SegmentRead) and reply.data, reply
            data += reply.data
    finally:
        await conn.close()
    return bytes(data)
