"""Bad input closes only the offending connection, logs one line with its peer, and leaves data unchanged."""

from __future__ import annotations

import asyncio
import struct
import uuid

import pytest
from segmentstore_helpers import connect, create_segment, event, read_all, setup_append

from anabranch.client.connection import next_request_id
from anabranch.protocol.codec import encode
from anabranch.protocol.commands import (
    AppendBlockEnd,
    DataAppended,
    GetStreamSegmentInfo,
    Hello,
    SetupAppend,
    StreamSegmentInfo,
)
from anabranch.testing.processes import HOST, SegmentStoreProcess

pytestmark = pytest.mark.process
SEG = "scope/stream/0.#epoch.0"
HEADER = struct.Struct(">ii")
WRITER = uuid.uuid4()

BAD_INPUTS: dict[str, bytes] = {
    "malformed frame": HEADER.pack(SetupAppend.TYPE, 3) + b"abc",
    "oversized length": HEADER.pack(9, 0x01000000),
    "negative length": HEADER.pack(9, -5),
    "unknown type": HEADER.pack(13, 0),
    "reply-only type": encode(DataAppended(WRITER, 1, 0, 1, 10)),
    "append without setup": encode(AppendBlockEnd(WRITER, 9, event(b"x"), 1, 1, 5)),
}


async def expect_closed(server_port: int, data: bytes, name: str) -> int:
    """Send Hello + ``data`` in one write; the server answers the Hello, then closes; return the local port."""
    reader, writer = await asyncio.open_connection(HOST, server_port)
    port = int(writer.get_extra_info("sockname")[1])
    writer.write(encode(Hello(17, 5)) + data)
    await writer.drain()

    received = bytearray()

    async def until_eof() -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)

    await asyncio.wait_for(until_eof(), 10)
    writer.close()
    assert bytes(received).startswith(encode(Hello(17, 5))), f"{name}: the Hello before the bad input is answered"
    return port


async def test_bad_inputs_close_only_their_connection(segmentstore: SegmentStoreProcess) -> None:
    good = await connect(segmentstore)
    try:
        await create_segment(good, SEG)
        writer = uuid.uuid4()
        await setup_append(good, writer, SEG)
        acked = asyncio.Event()
        good.add_listener(writer, lambda reply: acked.set())
        good.send(AppendBlockEnd(writer, 13, event(b"hello"), 1, 1, next_request_id()))
        await asyncio.wait_for(acked.wait(), 10)
        before = await read_all(good, SEG)
        port = segmentstore.segmentstore_port
        ports = {name: await expect_closed(port, data, name) for name, data in BAD_INPUTS.items()}
        info = await good.request(GetStreamSegmentInfo(next_request_id(), SEG, ""))
        assert isinstance(info, StreamSegmentInfo)
        assert await read_all(good, SEG) == before and info.write_offset == len(before)
    finally:
        await good.close()

    async def logged() -> None:
        while not all(f"127.0.0.1:{port}" in segmentstore.log_text() for port in ports.values()):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(logged(), 10)
    lines = segmentstore.log_text().splitlines()
    for name, port in ports.items():
        matching = [line for line in lines if f"127.0.0.1:{port}" in line]
        assert len(matching) == 1, (name, matching)
        assert "WARNING" in matching[0], (name, matching)


async def test_event_number_going_backwards_closes_the_connection_and_stores_nothing_of_it(
    segmentstore: SegmentStoreProcess,
) -> None:
    conn = await connect(segmentstore)
    await create_segment(conn, SEG)
    writer = uuid.uuid4()
    await setup_append(conn, writer, SEG)
    acked = asyncio.Event()
    conn.add_listener(writer, lambda reply: acked.set())
    conn.send(AppendBlockEnd(writer, 9, event(b"y"), 1, 10**6, next_request_id()))
    await asyncio.wait_for(acked.wait(), 10)
    closed = asyncio.Event()
    conn.on_close(lambda exc: closed.set())
    conn.send(AppendBlockEnd(writer, 9, event(b"z"), 1, 10**6 - 1, next_request_id()))
    await asyncio.wait_for(closed.wait(), 10)
    other = await connect(segmentstore)
    try:
        assert await read_all(other, SEG) == event(b"y")
    finally:
        await other.close()
