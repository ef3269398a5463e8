"""Issue 10, cases 1-3, through a real ``anabranch standalone``: requests whose fields the store cannot hold get an
error reply, the connection stays open, no container fails and the controller (whose metadata tables live in
those containers) keeps working."""

from __future__ import annotations

import uuid

import pytest
from robustness_helpers import CONTAINERS, connect, name_in_container, probe_every_container

from anabranch.client import StreamManager
from anabranch.client.connection import next_request_id
from anabranch.protocol.commands import (
    CreateSegment,
    CreateTransientSegment,
    ErrorMessage,
    ReadTableEntriesDelta,
    Reply,
    SegmentCreated,
    UpdateSegmentPolicy,
)
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process


def illegal_argument(reply: Reply, request_id: int) -> bool:
    return (isinstance(reply, ErrorMessage) and reply.request_id == request_id
            and reply.error_code == ErrorMessage.ILLEGAL_ARGUMENT)


async def controller_works(standalone: Standalone, scope: str) -> None:
    async with StreamManager(standalone.controller_uri) as manager:
        assert await manager.create_scope(scope)
        assert await manager.create_stream(scope, "s")
        writer = manager.create_writer(scope, "s")
        await writer.write_event(b"still here", routing_key="k")
        await writer.close()
        assert [name async for name in manager.list_streams(scope)] == ["s"]


async def test_requests_the_store_cannot_hold_are_refused_and_nothing_fails(standalone: Standalone) -> None:
    port = standalone.segmentstore_port
    await controller_works(standalone, "before")
    conn = await connect(port)
    try:
        for container_id in range(CONTAINERS):  # case 1, in every container (one holds the _system tables)
            name = name_in_container("case1", container_id)
            request_id = next_request_id()
            assert illegal_argument(await conn.request(CreateSegment(request_id, name, 0, -1)), request_id)
            assert isinstance(await conn.request(CreateSegment(next_request_id(), name, 0, 1)), SegmentCreated)
            request_id = next_request_id()
            assert illegal_argument(await conn.request(UpdateSegmentPolicy(request_id, name, 0, -1)), request_id)

        long_name = "case2/" + "n" * 65_526  # case 2: 65,532 bytes, a transient child would pass 65,535
        request_id = next_request_id()
        assert illegal_argument(await conn.request(CreateSegment(request_id, long_name)), request_id)
        request_id = next_request_id()
        reply = await conn.request(CreateTransientSegment(request_id, uuid.uuid4(), long_name, ""))
        assert illegal_argument(reply, request_id)

        table = "case3/" + "t" * 65_529  # case 3: the error reply quotes a 65,535-byte name
        request_id = next_request_id()
        reply = await conn.request(ReadTableEntriesDelta(request_id, table, "", 1 << 40, 10))
        assert illegal_argument(reply, request_id)
        assert isinstance(reply, ErrorMessage) and len(reply.segment.encode()) <= 65_535
    finally:
        await conn.close()
    await probe_every_container(port, "after")
    await controller_works(standalone, "after")
    log = standalone.log_text()
    assert "durable log failed" not in log and "Task exception was never retrieved" not in log
