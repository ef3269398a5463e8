"""Transactions and byte streams against the in-memory segment store."""

from __future__ import annotations

import asyncio
import io

import pytest
from client_write_fakes import FakeController, FakeSegmentStore, make_context, segment_name

from anabranch.client.byte_stream import ByteStreamReader, ByteStreamWriter
from anabranch.client.controller_client import TxnState
from anabranch.client.errors import ConditionalCheckFailedError, TxnFailedError
from anabranch.client.transactional_writer import TransactionalEventStreamWriter


async def test_commit_makes_events_visible_abort_never(fake_store: FakeSegmentStore,
                                                       fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "st", 2)
    context = make_context(fake_controller)
    writer: TransactionalEventStreamWriter[str] = TransactionalEventStreamWriter(context, "sc", "st")
    parents = [segment_name("sc", "st", 0), segment_name("sc", "st", 1)]
    async with await writer.begin_txn() as txn:
        for i in range(100):
            await txn.write_event(f"e{i}", routing_key=str(i))
        await txn.flush()
        assert sum(len(fake_store.events(p)) for p in parents) == 0, "invisible before commit"
    assert sum(len(fake_store.events(p)) for p in parents) == 100
    assert await txn.check_status() == TxnState.COMMITTED
    with pytest.raises(TxnFailedError):
        await txn.write_event("late")

    with pytest.raises(RuntimeError):
        async with await writer.begin_txn() as doomed:
            await doomed.write_event("never")
            raise RuntimeError("boom")
    assert await doomed.check_status() == TxnState.ABORTED
    assert sum(len(fake_store.events(p)) for p in parents) == 100
    await writer.close()
    await context.pool.close()


async def test_transaction_is_pinged_while_open(fake_store: FakeSegmentStore, fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "st", 1)
    context = make_context(fake_controller, txn_lease_ms=10_000)
    writer: TransactionalEventStreamWriter[bytes] = TransactionalEventStreamWriter(context, "sc", "st")
    txn = await writer.begin_txn(lease_ms=30)
    await asyncio.wait_for(_until(lambda: fake_controller.pings >= 2), 5)
    await txn.abort()
    await context.pool.close()


async def _until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0.005)


async def test_byte_stream_write_read_seek_truncate_seal(fake_store: FakeSegmentStore,
                                                         fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "bytes", 1)
    context = make_context(fake_controller)
    writer = await ByteStreamWriter.open(context, "sc", "bytes")
    await writer.write(b"hello ")
    await writer.write(b"world")
    await writer.flush()
    assert writer.tell() == 11
    reader = await ByteStreamReader.open(context, "sc", "bytes")
    assert await reader.read_exactly(11) == b"hello world"
    assert await reader.seek(6) == 6
    assert await reader.read(5) == b"world"
    assert await reader.seek(-5, io.SEEK_END) == 6
    await writer.truncate(6)
    assert await reader.head_offset() == 6
    await writer.write(b"!")
    await writer.seal()
    await reader.seek(11)
    assert await reader.read() == b"!"
    assert await reader.read() == b"", "end of a sealed byte stream"
    await writer.close()
    await context.pool.close()


async def test_second_writer_at_a_stale_offset_fails(fake_store: FakeSegmentStore,
                                                     fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "bytes", 1)
    context = make_context(fake_controller)
    first = await ByteStreamWriter.open(context, "sc", "bytes")
    second = await ByteStreamWriter.open(context, "sc", "bytes")
    await first.write(b"abc")
    await first.flush()
    await second.write(b"xyz")
    with pytest.raises(ConditionalCheckFailedError):
        await second.flush()
    assert bytes(fake_store.segments[segment_name("sc", "bytes", 0)].data) == b"abc"
    await first.close()
    await second.close(flush=False)
    await context.pool.close()


async def test_byte_stream_reconnect_acks_durable_chunks_once(fake_store: FakeSegmentStore,
                                                              fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "bytes", 1)
    context = make_context(fake_controller, request_timeout=0.5)
    writer = await ByteStreamWriter.open(context, "sc", "bytes")
    fake_store.hold_acks = True
    await writer.write(b"a" * 10)
    flushing = asyncio.create_task(writer.flush())
    await _until(lambda: len(fake_store.segments[segment_name("sc", "bytes", 0)].data) == 10)
    fake_store.hold_acks = False
    fake_store.drop_connections()
    await asyncio.wait_for(flushing, 10)
    await writer.write(b"b" * 5)
    await writer.flush()
    assert bytes(fake_store.segments[segment_name("sc", "bytes", 0)].data) == b"a" * 10 + b"b" * 5
    await writer.close()
    await context.pool.close()
