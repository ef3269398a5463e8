"""Append handling: setup, pipelined blocks acked in order, conditional appends, append errors."""

from __future__ import annotations

import uuid

from handler_harness import Client

from anabranch.protocol.commands import (
    NULL_ATTRIBUTE_VALUE,
    AppendSetup,
    ConditionalBlockEnd,
    ConditionalCheckFailed,
    CreateSegment,
    DataAppended,
    Hello,
    InvalidEventNumber,
    KeepAlive,
    NoSuchSegment,
    ReadSegment,
    SealSegment,
    SegmentIsSealed,
    SegmentRead,
    SetupAppend,
)
from anabranch.segmentstore.store import SegmentStore
from anabranch.segmentstore.tables import TableStore

SEG = "scope/stream/0.#epoch.0"


def event(payload: bytes) -> bytes:
    return (0).to_bytes(4, "big") + len(payload).to_bytes(4, "big") + payload


async def setup_writer(client: Client, writer: uuid.UUID, segment: str = SEG) -> AppendSetup:
    reply = await client.call(SetupAppend(7, writer, segment, ""))
    assert isinstance(reply, AppendSetup)
    return reply


async def test_hello_and_keepalive(stores: tuple[SegmentStore, TableStore]) -> None:
    client = Client(*stores)
    client.send(Hello(15, 5), KeepAlive())
    await client.wait_until(lambda: len(client.replies) == 2)
    assert client.replies == [Hello(17, 5), KeepAlive()]
    assert not client.closed
    client.send(Hello(4, 2))
    await client.wait_until(lambda: client.closed)
    assert client.replies[-1] == Hello(17, 5)


async def test_pipelined_appends_are_acked_in_order(stores: tuple[SegmentStore, TableStore]) -> None:
    client = Client(*stores)
    assert await client.call(CreateSegment(1, SEG))
    writer = uuid.uuid4()
    client.send(SetupAppend(2, writer, SEG, ""))
    blocks = [event(b"x" * i) * 3 for i in range(1, 21)]
    for i, block in enumerate(blocks):
        client.append(writer, block, 3, (i + 1) * 3, 100 + i)
    await client.wait_until(lambda: sum(isinstance(r, DataAppended) for r in client.replies) == 20)
    setup = client.replies[0]
    assert setup == AppendSetup(2, SEG, writer, NULL_ATTRIBUTE_VALUE)
    acks = [r for r in client.replies if isinstance(r, DataAppended)]
    previous = NULL_ATTRIBUTE_VALUE
    offset = 0
    for i, ack in enumerate(acks):
        offset += len(blocks[i])
        assert (ack.event_number, ack.previous_event_number, ack.request_id) == ((i + 1) * 3, previous, 100 + i)
        assert ack.current_segment_write_offset == offset
        previous = ack.event_number
    read = await client.call(ReadSegment(SEG, 0, 1 << 20, "", 500))
    assert isinstance(read, SegmentRead) and read.data == b"".join(blocks) and read.at_tail
    other = Client(*stores)
    assert (await setup_writer(other, writer)).last_event_number == 60


async def test_conditional_append_mismatch_is_not_fatal(stores: tuple[SegmentStore, TableStore]) -> None:
    client = Client(*stores)
    await client.call(CreateSegment(1, SEG))
    writer = uuid.uuid4()
    await setup_writer(client, writer)
    client.send(ConditionalBlockEnd(writer, 1, 5, b"abc", 10))
    assert await client.wait_reply(10) == ConditionalCheckFailed(writer, 1, 10)
    client.send(ConditionalBlockEnd(writer, 2, 0, b"abc", 11))
    assert await client.wait_reply(11) == DataAppended(writer, 2, NULL_ATTRIBUTE_VALUE, 11, 3)
    assert not client.closed


async def test_append_to_sealed_segment_reports_event_number(stores: tuple[SegmentStore, TableStore]) -> None:
    client = Client(*stores)
    await client.call(CreateSegment(1, SEG))
    await client.call(SealSegment(2, SEG))
    writer = uuid.uuid4()
    await setup_writer(client, writer)
    client.append(writer, event(b"a"), 1, 5, 20)
    assert await client.wait_reply(20) == SegmentIsSealed(20, SEG, "", 5)
    assert client.removed == [writer] and not client.closed


async def test_setup_on_missing_segment(stores: tuple[SegmentStore, TableStore]) -> None:
    client = Client(*stores)
    assert await client.call(SetupAppend(3, uuid.uuid4(), "no/such/0.#epoch.0", "")) == NoSuchSegment(
        3, "no/such/0.#epoch.0", "", -1
    )


async def test_stale_event_number_closes_the_connection(stores: tuple[SegmentStore, TableStore]) -> None:
    first = Client(*stores)
    await first.call(CreateSegment(1, SEG))
    writer = uuid.uuid4()
    await setup_writer(first, writer)
    first.append(writer, event(b"a"), 1, 5, 30)
    await first.wait_reply(30)
    second = Client(*stores)
    await setup_writer(second, writer)
    second.append(writer, event(b"b"), 1, 3, 31)
    assert await second.wait_reply(31) == InvalidEventNumber(writer, 31, "", 3)
    await second.wait_until(lambda: second.closed)


async def test_backpressure_pauses_reading(stores: tuple[SegmentStore, TableStore]) -> None:
    store, tables = stores
    client = Client(store, tables)
    client.handler._max_inflight = 10
    await client.call(CreateSegment(1, SEG))
    writer = uuid.uuid4()
    await setup_writer(client, writer)
    client.append(writer, event(b"x" * 20), 1, 1, 40)
    assert client.paused
    await client.wait_reply(40)
    assert not client.paused
