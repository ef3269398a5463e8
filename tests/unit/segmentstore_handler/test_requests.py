"""Non-append requests: reads, info, admin, merges, transient segments, attributes, tables, error mapping."""

from __future__ import annotations

import uuid

from handler_harness import Client

from anabranch.protocol.commands import (
    NO_VERSION,
    NOT_EXISTS,
    NULL_ATTRIBUTE_VALUE,
    ConditionalBlockEnd,
    CreateSegment,
    CreateTableSegment,
    CreateTransientSegment,
    DataAppended,
    DeleteSegment,
    DeleteTableSegment,
    ErrorMessage,
    GetSegmentAttribute,
    GetStreamSegmentInfo,
    GetTableSegmentInfo,
    LocateOffset,
    MergeSegments,
    MergeSegmentsBatch,
    NoSuchSegment,
    OffsetLocated,
    ReadSegment,
    ReadTable,
    ReadTableEntries,
    ReadTableEntriesDelta,
    ReadTableKeys,
    RemoveTableKeys,
    SealSegment,
    SegmentAlreadyExists,
    SegmentAttribute,
    SegmentAttributeUpdated,
    SegmentCreated,
    SegmentDeleted,
    SegmentIsSealed,
    SegmentIsTruncated,
    SegmentRead,
    SegmentsBatchMerged,
    SegmentSealed,
    SegmentsMerged,
    SegmentTruncated,
    SetupAppend,
    StreamSegmentInfo,
    TableEntriesDeltaRead,
    TableEntriesRead,
    TableEntriesUpdated,
    TableEntry,
    TableIteratorArgs,
    TableKey,
    TableKeyBadVersion,
    TableKeyDoesNotExist,
    TableKeysRead,
    TableKeysRemoved,
    TableRead,
    TableSegmentInfo,
    TableSegmentNotEmpty,
    TruncateSegment,
    UpdateSegmentAttribute,
    UpdateTableEntries,
)
from anabranch.segmentstore.store import SegmentStore
from anabranch.segmentstore.tables import TableStore

SEG = "scope/stream/0.#epoch.0"


async def write(client: Client, segment: str, data: bytes) -> None:
    writer = uuid.uuid4()
    await client.call(SetupAppend(900, writer, segment, ""))
    client.append(writer, data, 1, 1, 901)
    assert isinstance(await client.wait_reply(901), DataAppended)


async def test_reads(stores: tuple[SegmentStore, TableStore]) -> None:
    client = Client(*stores)
    await client.call(CreateSegment(1, SEG))
    await write(client, SEG, b"0123456789")
    assert await client.call(ReadSegment(SEG, 1, 4, "", 2)) == SegmentRead(SEG, 1, False, False, b"12345678", 2)
    assert await client.call(ReadSegment(SEG, 2, 0, "", 3)) == SegmentRead(SEG, 2, True, False, b"23456789", 3)
    tail = await client.call(ReadSegment(SEG, 10, 100, "", 4))
    assert tail == SegmentRead(SEG, 10, True, False, b"", 4)
    client.send(ReadSegment(SEG, 10, 100, "", 5))
    await write(client, SEG, b"ab")
    assert await client.wait_reply(5) == SegmentRead(SEG, 10, True, False, b"ab", 5)
    assert await client.call(TruncateSegment(6, SEG, 4, "")) == SegmentTruncated(6, SEG)
    assert await client.call(ReadSegment(SEG, 1, 10, "", 7)) == SegmentIsTruncated(7, SEG, 4, "", 1)
    assert await client.call(TruncateSegment(8, SEG, 99, "")) == SegmentIsTruncated(8, SEG, 4, "", 99)
    held = Client(stores[0], stores[1], tail_read_timeout=10)
    held.send(ReadSegment(SEG, 12, 100, "", 20))
    assert await client.call(SealSegment(9, SEG)) == SegmentSealed(9, SEG)
    assert await held.wait_reply(20) == SegmentRead(SEG, 12, True, True, b"", 20)
    assert await client.call(SealSegment(10, SEG)) == SegmentIsSealed(10, SEG, "", -1)
    assert await client.call(ReadSegment(SEG, 12, 10, "", 11)) == SegmentRead(SEG, 12, True, True, b"", 11)
    beyond = await client.call(ReadSegment(SEG, 13, 10, "", 12))
    assert isinstance(beyond, ErrorMessage) and beyond.error_code == ErrorMessage.ILLEGAL_ARGUMENT
    assert await client.call(ReadSegment("x/y/0.#epoch.0", 0, 10, "", 13)) == NoSuchSegment(
        13, "x/y/0.#epoch.0", "", 0
    )


async def test_info_attributes_locate_delete(stores: tuple[SegmentStore, TableStore]) -> None:
    client = Client(*stores)
    assert await client.call(CreateSegment(1, SEG)) == SegmentCreated(1, SEG)
    assert await client.call(CreateSegment(2, SEG)) == SegmentAlreadyExists(2, SEG, "")
    await write(client, SEG, b"hello")
    info = await client.call(GetStreamSegmentInfo(3, SEG, ""))
    assert isinstance(info, StreamSegmentInfo)
    assert (info.exists, info.is_sealed, info.write_offset, info.start_offset) == (True, False, 5, 0)
    attr = uuid.uuid4()
    assert await client.call(GetSegmentAttribute(4, SEG, attr, "")) == SegmentAttribute(4, NULL_ATTRIBUTE_VALUE)
    assert await client.call(UpdateSegmentAttribute(5, SEG, attr, 9, NULL_ATTRIBUTE_VALUE, "")) == (
        SegmentAttributeUpdated(5, True)
    )
    assert await client.call(UpdateSegmentAttribute(6, SEG, attr, 10, 3, "")) == SegmentAttributeUpdated(6, False)
    assert await client.call(GetSegmentAttribute(7, SEG, attr, "")) == SegmentAttribute(7, 9)
    assert await client.call(LocateOffset(8, SEG, 99, "")) == OffsetLocated(8, SEG, 5)
    assert await client.call(LocateOffset(9, SEG, 2, "")) == OffsetLocated(9, SEG, 2)
    assert await client.call(DeleteSegment(10, SEG, "")) == SegmentDeleted(10, SEG)
    assert await client.call(GetStreamSegmentInfo(11, SEG, "")) == NoSuchSegment(11, SEG, "", -1)


async def test_merges(stores: tuple[SegmentStore, TableStore]) -> None:
    client = Client(*stores)
    txn = [f"{SEG}#transaction.{i:032x}" for i in range(3)]
    for i, name in enumerate([SEG, *txn]):
        await client.call(CreateSegment(i + 1, name))
    await write(client, SEG, b"ab")
    await write(client, txn[0], b"cd")
    assert await client.call(MergeSegments(10, SEG, txn[0], "")) == SegmentsMerged(10, SEG, txn[0], 4)
    retried = Client(*stores, merges=client.handler._merges)
    assert await retried.call(MergeSegments(17, SEG, txn[0], "")) == SegmentsMerged(17, SEG, txn[0], 4)
    assert await Client(*stores).call(MergeSegments(18, SEG, txn[0], "")) == NoSuchSegment(18, txn[0], "", -1)
    assert await client.call(MergeSegments(11, SEG, "no/such/0.#epoch.0", "")) == NoSuchSegment(
        11, "no/such/0.#epoch.0", "", -1
    )
    await write(client, txn[1], b"ef")
    reply = await client.call(MergeSegmentsBatch(12, SEG, (txn[1], txn[2]), ""))
    assert reply == SegmentsBatchMerged(12, SEG, ((txn[1], 6), (txn[2], 6)))
    await client.call(SealSegment(13, SEG))
    await client.call(CreateSegment(14, txn[0]))
    assert await client.call(MergeSegments(15, SEG, txn[0], "")) == SegmentIsSealed(15, txn[0], "", -1)
    assert await client.call(ReadSegment(SEG, 0, 100, "", 16)) == SegmentRead(SEG, 0, True, True, b"abcdef", 16)


async def test_transient_segments(stores: tuple[SegmentStore, TableStore]) -> None:
    store, tables = stores
    client = Client(store, tables)
    await client.call(CreateSegment(1, SEG))
    writer = uuid.uuid4()
    created = await client.call(CreateTransientSegment(2, writer, SEG, ""))
    assert isinstance(created, SegmentCreated) and created.segment.startswith(f"{SEG}#transient.{writer.int:032x}.")
    await client.call(SetupAppend(3, writer, created.segment, ""))
    client.send(ConditionalBlockEnd(writer, 0, 0, b"big", 4))
    assert isinstance(await client.wait_reply(4), DataAppended)
    assert await client.call(MergeSegments(5, SEG, created.segment, "")) == SegmentsMerged(5, SEG, created.segment, 3)
    leftover = await client.call(CreateTransientSegment(6, writer, SEG, ""))
    assert isinstance(leftover, SegmentCreated)
    assert await client.call(CreateTransientSegment(7, writer, "no/such/0.#epoch.0", "")) == NoSuchSegment(
        7, "no/such/0.#epoch.0", "", -1
    )
    await client.handler.aclose()
    assert store.segment_names("scope/") == [SEG]


async def test_tables(stores: tuple[SegmentStore, TableStore]) -> None:
    client = Client(*stores)
    t = "scope/_tables/t"
    assert await client.call(CreateTableSegment(1, t, "")) == SegmentCreated(1, t)
    assert await client.call(CreateTableSegment(2, t, "")) == SegmentAlreadyExists(2, t, "")
    updated = await client.call(UpdateTableEntries(3, t, "", (
        TableEntry(TableKey(b"a", NOT_EXISTS), b"1"), TableEntry(TableKey(b"b", NO_VERSION), b"2"),
    ), -1))
    assert isinstance(updated, TableEntriesUpdated)
    va, vb = updated.updated_versions
    assert va < vb
    assert await client.call(UpdateTableEntries(4, t, "", (TableEntry(TableKey(b"a", NOT_EXISTS), b"x"),), -1)) == (
        TableKeyBadVersion(4, t, "")
    )
    assert await client.call(UpdateTableEntries(5, t, "", (TableEntry(TableKey(b"z", 3), b"x"),), -1)) == (
        TableKeyDoesNotExist(5, t, "")
    )
    stale = await client.call(UpdateTableEntries(6, t, "", (TableEntry(TableKey(b"c", NO_VERSION), b"x"),), 1))
    assert isinstance(stale, SegmentIsTruncated) and stale.offset == 1
    assert await client.call(ReadTable(7, t, "", (TableKey(b"a"), TableKey(b"q")))) == TableRead(7, t, (
        TableEntry(TableKey(b"a", va), b"1"), TableEntry(TableKey(b"q", NOT_EXISTS), b""),
    ))
    keys = await client.call(ReadTableKeys(8, t, "", 10))
    assert isinstance(keys, TableKeysRead) and [k.key for k in keys.keys] == [b"a", b"b"]
    done = await client.call(ReadTableKeys(9, t, "", 10, TableIteratorArgs(keys.continuation_token)))
    assert isinstance(done, TableKeysRead) and done.keys == ()
    entries = await client.call(ReadTableEntries(10, t, "", 1))
    assert isinstance(entries, TableEntriesRead) and entries.entries == (TableEntry(TableKey(b"a", va), b"1"),)
    delta = await client.call(ReadTableEntriesDelta(11, t, "", 0, 10))
    assert isinstance(delta, TableEntriesDeltaRead) and len(delta.entries) == 2 and delta.reached_end
    bad = await client.call(ReadTableEntriesDelta(12, t, "", delta.last_position + 1, 10))
    assert isinstance(bad, ErrorMessage) and bad.error_code == 0
    info = await client.call(GetTableSegmentInfo(13, t, ""))
    assert info == TableSegmentInfo(13, t, 0, delta.last_position, 2, 0)
    assert await client.call(DeleteTableSegment(14, t, True, "")) == TableSegmentNotEmpty(14, t, "")
    assert await client.call(RemoveTableKeys(15, t, "", (TableKey(b"a", va), TableKey(b"b")), -1)) == (
        TableKeysRemoved(15, t)
    )
    assert await client.call(DeleteTableSegment(16, t, True, "")) == SegmentDeleted(16, t)
    assert await client.call(ReadTable(17, t, "", (TableKey(b"a"),))) == NoSuchSegment(17, t, "", -1)
    assert await client.call(CreateTableSegment(18, t, "")) == SegmentCreated(18, t)
    big = await client.call(UpdateTableEntries(19, t, "", (TableEntry(TableKey(b"k" * 9000), b""),), -1))
    assert isinstance(big, ErrorMessage)
