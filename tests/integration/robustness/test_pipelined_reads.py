"""Issue 10, case 4: one connection pipelines 200 reads of 2 MiB and does not read the replies. The server stops
building replies once 1 MiB is waiting to be sent, so its resident memory stays bounded; when the client reads,
every reply arrives, complete and in order per request."""

from __future__ import annotations

import asyncio
import time

import pytest
from robustness_helpers import append, connect, probe_every_container, resident_mib

from anabranch.client.connection import next_request_id
from anabranch.protocol.codec import decode, encode
from anabranch.protocol.commands import CreateSegment, Hello, ReadSegment, SegmentCreated, SegmentRead
from anabranch.protocol.framing import HEADER
from anabranch.testing.processes import HOST, SegmentStoreProcess

pytestmark = pytest.mark.process
SEG = "case4/stream/0.#epoch.0"
READS = 200
READ_SIZE = 2 * 1024 * 1024
RSS_GROWTH_BOUND_MIB = 64


async def test_unread_pipelined_reads_hold_bounded_memory(segmentstore: SegmentStoreProcess) -> None:
    conn = await connect(segmentstore.segmentstore_port)
    try:
        assert isinstance(await conn.request(CreateSegment(next_request_id(), SEG)), SegmentCreated)
        payload = bytes(range(256)) * (READ_SIZE // 256 - 1)
        await append(conn, SEG, [payload])
    finally:
        await conn.close()
    baseline = resident_mib(segmentstore.pid)

    reader, writer = await asyncio.open_connection(HOST, segmentstore.segmentstore_port)
    writer.write(encode(Hello(17, 5)) + b"".join(
        encode(ReadSegment(SEG, 0, READ_SIZE, "", 1000 + i)) for i in range(READS)))
    await asyncio.wait_for(writer.drain(), 10)
    peak = baseline
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # sample while the server would be piling up replies
        peak = max(peak, resident_mib(segmentstore.pid))
        await asyncio.sleep(0.05)
    assert peak - baseline < RSS_GROWTH_BOUND_MIB, f"RSS grew {peak - baseline:.0f} MiB (baseline {baseline:.0f})"

    hello = await asyncio.wait_for(reader.readexactly(HEADER.size + 8), 10)
    assert hello == encode(Hello(17, 5))
    seen = set()
    for _ in range(READS):
        header = await asyncio.wait_for(reader.readexactly(HEADER.size), 30)
        type_code, length = HEADER.unpack(header)
        reply = decode(type_code, await asyncio.wait_for(reader.readexactly(length), 30))
        assert isinstance(reply, SegmentRead) and reply.offset == 0 and len(reply.data) == len(payload) + 8, reply
        seen.add(reply.request_id)
        peak = max(peak, resident_mib(segmentstore.pid))
    assert seen == {1000 + i for i in range(READS)}
    assert peak - baseline < RSS_GROWTH_BOUND_MIB, f"RSS grew {peak - baseline:.0f} MiB while draining"
    writer.close()
    await probe_every_container(segmentstore.segmentstore_port, "case4")
    print(f"case 4: baseline {baseline:.0f} MiB, peak {peak:.0f} MiB with {READS} unread 2 MiB reads")
