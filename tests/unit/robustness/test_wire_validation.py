"""Wire requests are validated where they enter and every reply encodes; per-connection resources are bounded.

Drives a real ConnectionHandler over an in-memory store, with a fake output that can refuse to drain."""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anabranch.protocol.codec import decode, encode
from anabranch.protocol.codec_fields import MAX_UTF_BYTES
from anabranch.protocol.commands import (
    NO_VERSION,
    ConditionalAttributeUpdate,
    CreateSegment,
    CreateTableSegment,
    CreateTransientSegment,
    ErrorMessage,
    GetStreamSegmentInfo,
    MergeSegments,
    MergeSegmentsBatch,
    ReadSegment,
    ReadTable,
    ReadTableEntriesDelta,
    Reply,
    SegmentCreated,
    SegmentRead,
    SetupAppend,
    StreamSegmentInfo,
    TableEntriesUpdated,
    TableEntry,
    TableKey,
    TableRead,
    TruncateSegment,
    UpdateSegmentPolicy,
    UpdateTableEntries,
    WireCommand,
)
from anabranch.protocol.framing import FrameDecoder
from anabranch.protocol.server_connection import ServerConnection
from anabranch.protocol.validation import MAX_SEGMENT_NAME_BYTES, fit_reply, request_problem
from anabranch.segmentstore.handler import ConnectionHandler
from anabranch.segmentstore.reply_budget import ReplyBudget
from anabranch.segmentstore.store import SegmentStore, open_segment_store
from anabranch.segmentstore.tables import TableStore

SEG = "scope/stream/0.#epoch.0"
TABLE = "scope/_tables/t"
LONG = "n" * 65_535


class Connection:
    """The handler's output: decodes replies; ``stalled`` models a client that does not read."""

    def __init__(self, store: SegmentStore, tables: TableStore, **options: int) -> None:
        self.replies: list[Reply] = []
        self.frames = FrameDecoder()
        self.reading_paused = False
        self.closed = False
        self.changed = asyncio.Event()
        self.connection = ServerConnection()
        self.handler = ConnectionHandler(store, tables, self, tail_read_timeout=0.2, peer="test:1", **options)

    def write(self, frame: bytes) -> None:
        for type_code, payload in self.frames.feed(frame):
            self.replies.append(decode(type_code, payload))  # type: ignore[arg-type]
        self.changed.set()

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def send(self, *commands: WireCommand) -> None:
        self.handler.handle_all(self.connection.receive_data(b"".join(encode(c) for c in commands)))

    async def until(self, predicate: object, timeout: float = 5.0) -> None:
        async def loop() -> None:
            while not predicate():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def call(self, command: WireCommand) -> Reply:
        request_id = getattr(command, "request_id")  # noqa: B009
        self.send(command)
        await self.until(lambda: any(getattr(r, "request_id", None) == request_id for r in self.replies))
        reply = next(r for r in self.replies if getattr(r, "request_id", None) == request_id)
        self.replies.remove(reply)
        return reply


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SegmentStore, TableStore]]:
    store = await open_segment_store(tmp_path, 2, durable=False)
    try:
        yield store, TableStore(store)
    finally:
        await store.close()


def refused(reply: Reply, request_id: int, words: str) -> bool:
    return (isinstance(reply, ErrorMessage) and reply.request_id == request_id
            and reply.error_code == ErrorMessage.ILLEGAL_ARGUMENT and words in reply.message)


def test_request_problem_names_the_field() -> None:
    assert request_problem(CreateSegment(1, SEG, 0, -1)) is not None
    assert request_problem(CreateSegment(1, SEG, 0, 3)) is not None
    assert request_problem(CreateSegment(1, SEG, -5, 1)) is not None
    assert request_problem(CreateSegment(1, SEG, 10, 2)) is None
    assert request_problem(UpdateSegmentPolicy(1, SEG, 0, 127)) is not None
    assert request_problem(CreateSegment(1, "x" * (MAX_SEGMENT_NAME_BYTES + 1))) is not None
    assert request_problem(CreateSegment(1, "é" * (MAX_SEGMENT_NAME_BYTES // 2 + 1))) is not None
    assert request_problem(CreateSegment(1, "")) is not None
    assert request_problem(TruncateSegment(1, SEG, -1)) is not None
    assert request_problem(ReadSegment(SEG, -1, 10, "", 1)) is not None
    assert request_problem(ReadTableEntriesDelta(1, TABLE, "", -1, 10)) is not None
    assert request_problem(MergeSegmentsBatch(1, SEG, ("a", "x" * 9000))) is not None
    assert request_problem(MergeSegmentsBatch(1, SEG, tuple(f"s{i}" for i in range(10_001)))) is not None
    assert request_problem(CreateTransientSegment(1, uuid.uuid4(), SEG)) is None


def test_fit_reply_makes_long_names_encodable() -> None:
    reply = ErrorMessage(1, "é" * 40_000, "m" * 70_000, 0)
    fitted = fit_reply(reply)
    assert isinstance(fitted, ErrorMessage)
    decoded = decode(ErrorMessage.TYPE, memoryview(encode(fitted))[8:])
    assert isinstance(decoded, ErrorMessage) and decoded.request_id == 1
    assert len(decoded.segment.encode()) <= MAX_UTF_BYTES and decoded.segment.startswith("éé")


async def test_out_of_range_fields_get_an_error_reply_and_the_connection_stays(
    stores: tuple[SegmentStore, TableStore],
) -> None:
    store, tables = stores
    conn = Connection(store, tables)
    assert refused(await conn.call(CreateSegment(1, SEG, 0, -1)), 1, "scaleType")
    assert refused(await conn.call(UpdateSegmentPolicy(2, SEG, 0, -1)), 2, "scaleType")
    assert refused(await conn.call(CreateSegment(3, LONG[:65_532])), 3, "exceeds the limit")
    reply = await conn.call(ReadTableEntriesDelta(4, LONG, "", 1 << 40, 10))
    assert isinstance(reply, ErrorMessage) and reply.request_id == 4
    assert isinstance(await conn.call(CreateSegment(5, SEG, 0, 1)), SegmentCreated)
    name = "p" * MAX_SEGMENT_NAME_BYTES
    assert isinstance(await conn.call(CreateSegment(6, name)), SegmentCreated)
    transient = await conn.call(CreateTransientSegment(7, uuid.uuid4(), name))
    assert isinstance(transient, SegmentCreated) and transient.segment.startswith(name + "#transient.")
    assert isinstance(await conn.call(CreateTableSegment(8, "t" * MAX_SEGMENT_NAME_BYTES)), SegmentCreated)
    past_end = await conn.call(ReadTableEntriesDelta(9, "t" * MAX_SEGMENT_NAME_BYTES, "", 1 << 40, 10))
    assert refused(past_end, 9, "outside table segment")
    assert not conn.closed and store.health().ready


async def test_a_reply_past_the_frame_limit_becomes_an_error(stores: tuple[SegmentStore, TableStore]) -> None:
    store, tables = stores
    conn = Connection(store, tables)
    await conn.call(CreateTableSegment(1, TABLE))
    value = b"v" * (1024 * 1024 - 8192)
    assert isinstance(await conn.call(UpdateTableEntries(2, TABLE, "", (TableEntry(TableKey(b"k", NO_VERSION),
                                                                                    value),))), TableEntriesUpdated)
    reply = await conn.call(ReadTable(3, TABLE, "", tuple(TableKey(b"k", NO_VERSION) for _ in range(20))))
    assert refused(reply, 3, "exceeds the wire limits"), reply
    small = await conn.call(ReadTable(4, TABLE, "", (TableKey(b"k", NO_VERSION),)))
    assert isinstance(small, TableRead) and small.entries[0].value == value


async def test_pipelined_reads_wait_for_the_reply_budget(stores: tuple[SegmentStore, TableStore]) -> None:
    """A client that stops reading: replies stop being built once the send buffer is backed up."""
    store, tables = stores
    await store.create_segment(SEG)
    await store.append(SEG, b"d" * (2 * 1024 * 1024))
    conn = Connection(store, tables, max_concurrent_requests=8)
    conn.handler.replies_backed_up(True)
    assert conn.reading_paused
    conn.send(*(ReadSegment(SEG, 0, 2 * 1024 * 1024, "", 100 + i) for i in range(50)))
    await asyncio.sleep(0.05)  # give the request tasks a chance to run (none may produce a reply)
    assert not [r for r in conn.replies if isinstance(r, SegmentRead)]
    assert len(conn.handler._waiting) == 50 - 8
    conn.handler.replies_backed_up(False)
    await conn.until(lambda: sum(isinstance(r, SegmentRead) for r in conn.replies) == 50)
    assert not conn.reading_paused
    info = await conn.call(GetStreamSegmentInfo(1, SEG, ""))
    assert isinstance(info, StreamSegmentInfo)


async def test_reply_budget_admits_one_large_reply_at_a_time_in_order() -> None:
    budget = ReplyBudget(high_water=1000)
    order: list[int] = []
    release = asyncio.Event()

    async def reply(index: int, size: int) -> None:
        async with budget.reserve(size):
            order.append(index)
            await release.wait()

    tasks = [asyncio.create_task(reply(i, 800)) for i in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order == [0] and budget.reserved == 800
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == [0, 1, 2] and budget.reserved == 0


def test_merge_attribute_update_types_are_checked() -> None:
    replace = ConditionalAttributeUpdate(uuid.uuid4(), ConditionalAttributeUpdate.REPLACE, 1, 0)
    odd = ConditionalAttributeUpdate(uuid.uuid4(), 3, 1, 0)
    assert request_problem(MergeSegments(1, SEG, "src", "", (replace,))) is None
    assert "updateType 3" in (request_problem(MergeSegments(1, SEG, "src", "", (replace, odd))) or "")


async def test_closing_with_waiting_requests_drops_them_cleanly(stores: tuple[SegmentStore, TableStore]) -> None:
    """Found by the wire fuzzer: a waiting SetupAppend dropped at close left a coroutine never awaited."""
    store, tables = stores
    await store.create_segment(SEG)
    conn = Connection(store, tables, max_concurrent_requests=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conn.send(ReadSegment(SEG, 0, 100, "", 1), *(SetupAppend(2 + i, uuid.uuid4(), SEG, "") for i in range(3)))
        assert conn.reading_paused and len(conn.handler._waiting) == 3
        await conn.handler.aclose()
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_table_batches_are_bounded() -> None:
    keys = tuple(TableKey(b"k%d" % i, NO_VERSION) for i in range(10_001))
    assert "10001 table keys" in (request_problem(ReadTable(1, TABLE, "", keys)) or "")
    assert request_problem(ReadTable(1, TABLE, "", keys[:256])) is None
