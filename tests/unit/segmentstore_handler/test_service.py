"""SegmentStoreService in-process: listen on a free port, serve a round trip, pause on bad input, stop cleanly."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from anabranch.client.connection import RawConnection, next_request_id
from anabranch.protocol.codec import encode
from anabranch.protocol.commands import (
    AppendBlockEnd,
    CreateSegment,
    DataAppended,
    Hello,
    ReadSegment,
    SegmentCreated,
    SegmentRead,
    SetupAppend,
)
from anabranch.segmentstore.service import SegmentStoreService


async def test_service_round_trip_and_restart(tmp_path: Path) -> None:
    service = SegmentStoreService(tmp_path, port=0, container_count=2, tail_read_timeout=0.5)
    await service.start()
    try:
        assert service.port != 0
        conn = await RawConnection.connect("127.0.0.1", service.port)
        seg = "s/t/0.#epoch.0"
        assert isinstance(await conn.request(CreateSegment(next_request_id(), seg)), SegmentCreated)
        writer = uuid.uuid4()
        await conn.request(SetupAppend(next_request_id(), writer, seg, ""))
        acked = asyncio.get_running_loop().create_future()
        conn.add_listener(writer, acked.set_result)
        conn.send(AppendBlockEnd(writer, 4, b"\0\0\0\0", 1, 1, next_request_id()))
        assert isinstance(await asyncio.wait_for(acked, 5), DataAppended)
        reader, raw = await asyncio.open_connection("127.0.0.1", service.port)
        raw.write(encode(Hello(17, 5)) + b"\0\0\0\x07\xff\xff\xff\xff")
        assert await asyncio.wait_for(reader.read(), 5) in (b"", encode(Hello(17, 5)))
        raw.close()
        request_id = next_request_id()
        tail = await conn.request(ReadSegment(seg, 4, 100, "", request_id))
        assert tail == SegmentRead(seg, 4, True, False, b"", request_id)
        await conn.close()
    finally:
        await service.stop()
    again = SegmentStoreService(tmp_path, port=0, container_count=2)
    async with again:
        conn = await RawConnection.connect("127.0.0.1", again.port)
        read = await conn.request(ReadSegment("s/t/0.#epoch.0", 0, 100, "", next_request_id()))
        assert isinstance(read, SegmentRead) and read.data == b"\0\0\0\0"
        await conn.close()
