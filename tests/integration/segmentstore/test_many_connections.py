"""Hundreds of concurrent connections, each doing a round trip."""

from __future__ import annotations

import asyncio

import pytest
from segmentstore_helpers import connect, create_segment

from anabranch.client.connection import next_request_id
from anabranch.protocol.commands import GetStreamSegmentInfo, StreamSegmentInfo
from anabranch.testing.processes import SegmentStoreProcess

pytestmark = pytest.mark.process
SEG = "scope/stream/0.#epoch.0"


async def test_300_concurrent_connections(segmentstore: SegmentStoreProcess) -> None:
    admin = await connect(segmentstore)
    await create_segment(admin, SEG)
    await admin.close()

    connections = await asyncio.wait_for(asyncio.gather(*(connect(segmentstore) for _ in range(300))), 60)
    try:
        replies = await asyncio.wait_for(
            asyncio.gather(*(c.request(GetStreamSegmentInfo(next_request_id(), SEG, "")) for c in connections)), 60
        )
        assert all(isinstance(r, StreamSegmentInfo) and r.segment_name == SEG for r in replies)
    finally:
        await asyncio.gather(*(c.close() for c in connections))
