"""Round trips through a real ``anabranch segmentstore`` process: append, read, seal, truncate, merge, tables."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from segmentstore_helpers import connect, create_segment, event, parse_events, read_all, setup_append

from anabranch.client.connection import next_request_id
from anabranch.protocol.codec import encode_append_block_end
from anabranch.protocol.commands import (
    NO_VERSION,
    NOT_EXISTS,
    CreateSegment,
    CreateTableSegment,
    DataAppended,
    MergeSegments,
    ReadSegment,
    ReadTable,
    ReadTableEntriesDelta,
    SealSegment,
    SegmentAlreadyExists,
    SegmentCreated,
    SegmentIsSealed,
    SegmentIsTruncated,
    SegmentRead,
    SegmentSealed,
    SegmentsMerged,
    SegmentTruncated,
    TableEntriesDeltaRead,
    TableEntriesUpdated,
    TableEntry,
    TableKey,
    TableKeyBadVersion,
    TableRead,
    TruncateSegment,
    UpdateTableEntries,
)
from anabranch.testing.processes import SegmentStoreProcess

pytestmark = pytest.mark.process
SEG = "scope/stream/0.#epoch.0"


async def append_events(conn: object, writer_id: uuid.UUID, segment: str, payloads: list[bytes], first: int) -> list:
    """Send one block per payload, pipelined; wait for every ack."""
    acks: list[DataAppended] = []
    done = asyncio.Event()

    def on_reply(reply: object) -> None:
        assert isinstance(reply, DataAppended), reply
        acks.append(reply)
        if reply.event_number == first + len(payloads) - 1:
            done.set()

    conn.add_listener(writer_id, on_reply)  # type: ignore[attr-defined]
    for i, payload in enumerate(payloads):
        data = event(payload)
        conn.writelines(  # type: ignore[attr-defined]
            encode_append_block_end(writer_id, len(data), [data], len(data), 1, first + i, next_request_id())
        )
    await asyncio.wait_for(done.wait(), 20)
    conn.remove_listener(writer_id)  # type: ignore[attr-defined]
    return acks


async def test_append_read_seal_truncate_merge_tables(segmentstore: SegmentStoreProcess) -> None:
    conn = await connect(segmentstore)
    try:
        await create_segment(conn, SEG)
        writer = uuid.uuid4()
        assert await setup_append(conn, writer, SEG) == -(2**63)
        payloads = [b"event-%d" % i for i in range(200)]
        acks = await append_events(conn, writer, SEG, payloads, 1)
        assert [a.event_number for a in acks] == list(range(1, 201))
        assert parse_events(await read_all(conn, SEG)) == payloads

        txn = f"{SEG}#transaction.{uuid.uuid4().int:032x}"
        await create_segment(conn, txn)
        txn_writer = uuid.uuid4()
        await setup_append(conn, txn_writer, txn)
        await append_events(conn, txn_writer, txn, [b"txn"], 1)
        merged = await conn.request(MergeSegments(next_request_id(), SEG, txn, ""))
        assert isinstance(merged, SegmentsMerged)
        assert parse_events(await read_all(conn, SEG))[-1] == b"txn"

        length = merged.new_target_write_offset
        assert isinstance(await conn.request(TruncateSegment(next_request_id(), SEG, 15, "")), SegmentTruncated)
        truncated = await conn.request(ReadSegment(SEG, 0, 100, "", next_request_id()))
        assert isinstance(truncated, SegmentIsTruncated) and truncated.start_offset == 15
        assert isinstance(await conn.request(SealSegment(next_request_id(), SEG, "")), SegmentSealed)
        end = await conn.request(ReadSegment(SEG, length, 100, "", next_request_id()))
        assert isinstance(end, SegmentRead) and end.end_of_segment and end.data == b""
        assert isinstance(await conn.request(SealSegment(next_request_id(), SEG, "")), SegmentIsSealed)

        table = "scope/t-table"
        assert isinstance(await conn.request(CreateTableSegment(next_request_id(), table, "")), SegmentCreated)
        updated = await conn.request(UpdateTableEntries(next_request_id(), table, "", (
            TableEntry(TableKey(b"k1", NOT_EXISTS), b"v1"), TableEntry(TableKey(b"k2", NO_VERSION), b"v2"),
        )))
        assert isinstance(updated, TableEntriesUpdated)
        bad = await conn.request(UpdateTableEntries(next_request_id(), table, "", (
            TableEntry(TableKey(b"k1", NOT_EXISTS), b"v1"),
        )))
        assert isinstance(bad, TableKeyBadVersion)
    finally:
        await conn.close()

    assert segmentstore.stop() == 0
    segmentstore.start()
    conn = await connect(segmentstore)
    try:
        read = await conn.request(ReadTable(next_request_id(), table, "", (TableKey(b"k1"), TableKey(b"k2"))))
        assert isinstance(read, TableRead)
        assert [(e.key.version, e.value) for e in read.entries] == list(zip(updated.updated_versions,
                                                                           [b"v1", b"v2"], strict=True))
        delta = await conn.request(ReadTableEntriesDelta(next_request_id(), table, "", 0, 10))
        assert isinstance(delta, TableEntriesDeltaRead) and len(delta.entries) == 2
        assert isinstance(await conn.request(CreateSegment(next_request_id(), SEG)), SegmentAlreadyExists)
        end = await conn.request(ReadSegment(SEG, length, 100, "", next_request_id()))
        assert isinstance(end, SegmentRead) and end.end_of_segment
    finally:
        await conn.close()
