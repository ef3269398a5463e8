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
    "event number backwards": (
        encode(SetupAppend(7, WRITER, SEG, ""))
        + encode(AppendBlockEnd(WRITER, 9, event(b"y"), 1, 10**6, 8))
        + encode(AppendBlockEnd(WRITER, 9, event(b"z"), 1, 10**6 - 1, 9))
    ),
}


async def expect_closed(server_port: int, data: bytes) -> int:
    """Send Hello + ``data`` on a raw socket; return the local port once the server closed it."""
    reader, writer = await asyncio.open_connection(HOST, server_port)
    port = int(writer.get_extra_info("sockname")[1])
    writer.write(encode(Hello(17, 5)) + data)
    await writer.drain()

    async def until_eof() -> None:
        while await reader.read(65536):
            pass

    await asyncio.wait_for(until_eof(), 10)
    writer.close()
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
        ports = {name: await expect_closed(segmentstore.segmentstore_port, data) for name, data in BAD_INPUTS.items()}
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
