"""Helpers for robustness tests through real server processes: probes, memory figures, raw frames."""

from __future__ import annotations

import asyncio
import struct
import uuid

from anabranch.client.connection import RawConnection, next_request_id
from anabranch.protocol.commands import (
    AppendBlockEnd,
    AppendSetup,
    CreateSegment,
    DataAppended,
    ReadSegment,
    Reply,
    SegmentCreated,
    SegmentRead,
    SetupAppend,
)
from anabranch.segmentstore.store import container_id_for
from anabranch.testing.processes import HOST
from anabranch.testing.wire_fuzz import resident_mib

__all__ = ["resident_mib"]

CONTAINERS = 4
EVENT_HEADER = struct.Struct(">ii")


def event(payload: bytes) -> bytes:
    return EVENT_HEADER.pack(0, len(payload)) + payload


def name_in_container(prefix: str, container_id: int, count: int = CONTAINERS) -> str:
    """A stream-segment name under ``prefix`` that lives in ``container_id``."""
    for index in range(10_000):
        name = f"{prefix}/s{index}/0.#epoch.0"
        if container_id_for(name, count) == container_id:
            return name
    raise AssertionError(f"no name for container {container_id}")


async def connect(port: int) -> RawConnection:
    return await RawConnection.connect(HOST, port)


async def probe_every_container(port: int, tag: str) -> None:
    """Every container takes a write and serves it back (a failed container cannot)."""
    conn = await connect(port)
    try:
        for container_id in range(CONTAINERS):
            name = name_in_container(f"probe-{tag}-{uuid.uuid4().hex[:8]}", container_id)
            reply = await conn.request(CreateSegment(next_request_id(), name), timeout=10)
            assert isinstance(reply, SegmentCreated), (container_id, reply)
            await append(conn, name, [b"probe"])
            assert await read_all(conn, name) == event(b"probe")
    finally:
        await conn.close()


async def append(conn: RawConnection, segment: str, payloads: list[bytes], writer: uuid.UUID | None = None) -> Reply:
    """Append the events as one block; returns the reply (DataAppended, or an error reply)."""
    writer = writer or uuid.uuid4()
    setup = await conn.request(SetupAppend(next_request_id(), writer, segment, ""), timeout=10)
    assert isinstance(setup, AppendSetup), setup
    done: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

    def on_reply(reply: Reply) -> None:
        if not done.done():
            done.set_result(reply)

    request_id = next_request_id()
    conn.add_listener(writer, on_reply)
    conn.add_request_listener(request_id, on_reply)  # error replies carry no writer id
    data = b"".join(event(p) for p in payloads)
    last = max(setup.last_event_number, 0) + len(payloads)
    conn.send(AppendBlockEnd(writer, len(data), data, len(payloads), last, request_id))
    return await asyncio.wait_for(done, 30)


async def read_all(conn: RawConnection, segment: str) -> bytes:
    parts = []
    offset = 0
    while True:
        reply = await conn.request(ReadSegment(segment, offset, 2 * 1024 * 1024, "", next_request_id()), timeout=30)
        assert isinstance(reply, SegmentRead), reply
        parts.append(reply.data)
        offset += len(reply.data)
        if reply.at_tail or reply.end_of_segment:
            return b"".join(parts)


def acked(reply: Reply) -> bool:
    return isinstance(reply, DataAppended)
