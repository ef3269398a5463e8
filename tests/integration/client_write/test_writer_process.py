"""The event writer against a real ``anabranch standalone``: scaling, crashes, transactions, byte streams."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
from client_write_helpers import events_by_segment

from anabranch.client import (
    ByteStreamReader,
    ConditionalCheckFailedError,
    ScalingPolicy,
    StreamConfiguration,
    StreamManager,
    StreamSealedError,
    TxnFailedError,
    TxnState,
)
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process


def _check_keys(found: dict[str, list[bytes]], expected: dict[str, list[int]]) -> None:
    """No loss, no duplicates, and per-key order when segments are read epoch by epoch."""
    seen: dict[str, list[int]] = defaultdict(list)
    for name in sorted(found, key=lambda n: int(n.rsplit(".", 1)[1])):
        for event in found[name]:
            key, number = event.decode().split(":")
            seen[key].append(int(number))
    assert set(seen) == set(expected)
    for key, numbers in expected.items():
        assert seen[key] == numbers, f"key {key}: lost, duplicated or reordered events"


async def test_no_loss_no_duplicates_key_order_across_scale_up_and_down(shared_standalone: Standalone) -> None:
    scope, stream = f"s{uuid.uuid4().hex[:8]}", "scaled"
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(2)))
        writer = manager.create_writer(scope, stream)
        expected: dict[str, list[int]] = defaultdict(list)

        async def scale() -> None:
            await asyncio.sleep(0.05)
            first = await manager.controller.scale_and_wait(scope, stream, [0], [(0.0, 0.25), (0.25, 0.5)])
            await asyncio.sleep(0.05)
            ids = [s.segment_id for s in first.new_segments]
            await manager.controller.scale_and_wait(scope, stream, ids, [(0.0, 0.5)])

        scaler = asyncio.create_task(scale())
        for i in range(12_000):
            key = f"key{i % 97}"
            await writer.write_event(f"{key}:{i}", routing_key=key)
            expected[key].append(i)
            if i % 200 == 0:
                await asyncio.sleep(0.002)
        await asyncio.wait_for(scaler, 60)
        await asyncio.wait_for(writer.flush(), 60)
        segments = await manager.get_current_segments(scope, stream)
        assert len(segments) == 2 and segments[0].segment_id >> 32 == 2
        _check_keys(await events_by_segment(manager, scope, stream, 2, 6), expected)


async def test_exactly_once_across_a_server_crash(standalone: Standalone) -> None:
    scope, stream = "crash", "st"
    expected: dict[str, list[int]] = defaultdict(list)
    async with StreamManager(standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(3)))
        writer = manager.create_writer(scope, stream)
        for i in range(6000):
            key = f"k{i % 31}"
            await writer.write_event(f"{key}:{i}", routing_key=key)
            expected[key].append(i)
            if i == 3000:
                await asyncio.sleep(0.002)
                unacked = sum(s["inflight_blocks"] + s["ready_blocks"] for s in writer.statistics()["segments"])
                standalone.kill()
                await asyncio.to_thread(standalone.start)
        await asyncio.wait_for(writer.flush(), 90)
        _check_keys(await events_by_segment(manager, scope, stream, 0, 3), expected)
        assert unacked > 0, "the crash should hit blocks in flight"


async def test_transactions_visible_only_after_commit(shared_standalone: Standalone) -> None:
    scope, stream = f"t{uuid.uuid4().hex[:8]}", "txn"
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(2)))
        txn_writer = manager.create_transactional_writer(scope, stream)
        txn = await txn_writer.begin_txn()
        for i in range(300):
            await txn.write_event(f"k{i % 7}:{i}", routing_key=f"k{i % 7}")
        await txn.flush()
        assert await events_by_segment(manager, scope, stream, 0, 2) == {}
        await txn.commit()
        with pytest.raises(TxnFailedError):
            await txn.write_event("late")
        aborted = await txn_writer.begin_txn()
        await aborted.write_event("never:0")
        await aborted.flush()
        await aborted.abort()

        async def committed() -> dict[str, list[bytes]]:
            while True:
                found = await events_by_segment(manager, scope, stream, 0, 2)
                if sum(len(v) for v in found.values()) >= 300 and await txn.check_status() == TxnState.COMMITTED:
                    return found
                await asyncio.sleep(0.05)

        found = await asyncio.wait_for(committed(), 30)
        _check_keys(found, {f"k{k}": [i for i in range(300) if i % 7 == k] for k in range(7)})
        assert await aborted.check_status() in (TxnState.ABORTING, TxnState.ABORTED)


async def test_byte_stream_seek_truncate_seal(shared_standalone: Standalone) -> None:
    scope, stream = f"b{uuid.uuid4().hex[:8]}", "bytes"
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream)
        writer = await manager.create_byte_stream_writer(scope, stream)
        await writer.write(b"0123456789" * 1000)
        await writer.flush()
        reader = await manager.create_byte_stream_reader(scope, stream)
        assert await reader.read_exactly(10_000) == b"0123456789" * 1000
        assert await reader.seek(-4, 2) == 9996
        assert await reader.read_exactly(4) == b"6789"
        tail_wait = asyncio.create_task(reader.read(3))
        await asyncio.sleep(0.05)
        assert not tail_wait.done(), "a read at the tail waits for data"
        await writer.write(b"abc")
        await writer.flush()
        assert await asyncio.wait_for(tail_wait, 30) == b"abc"
        await writer.truncate(5000)
        fresh: ByteStreamReader = await manager.create_byte_stream_reader(scope, stream)
        assert fresh.tell() == 5000
        assert await fresh.read_exactly(10) == b"0123456789"
        stale = await manager.create_byte_stream_writer(scope, stream)
        await writer.write(b"!")
        await writer.flush()
        await stale.write(b"?")
        with pytest.raises(ConditionalCheckFailedError):
            await stale.flush()
        await stale.close(flush=False)
        await writer.seal()
        await fresh.seek(10_003)
        assert await fresh.read() == b"!"
        assert await asyncio.wait_for(fresh.read(), 30) == b""


async def test_writing_to_a_sealed_stream_fails(shared_standalone: Standalone) -> None:
    scope, stream = f"z{uuid.uuid4().hex[:8]}", "sealed"
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream)
        writer = manager.create_writer(scope, stream)
        await (await writer.write_event("a"))
        await manager.seal_stream(scope, stream)
        ack = await writer.write_event("b")
        with pytest.raises(StreamSealedError):
            await asyncio.wait_for(ack, 30)
        await writer.close(flush=False)


async def test_large_events_and_time_marks(shared_standalone: Standalone) -> None:
    scope, stream = f"l{uuid.uuid4().hex[:8]}", "large"
    big = bytes(range(256)) * (36 * 1024 + 11)
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream)
        writer = manager.create_writer(scope, stream)
        await writer.write_event(b"first")
        await writer.write_event(big)
        await writer.write_event(b"last")
        await asyncio.wait_for(writer.flush(), 60)
        assert await writer.note_time(1_700_000_000_000)
        found = await events_by_segment(manager, scope, stream, 0, 1)
        assert found[f"{scope}/{stream}/0.#epoch.0"] == [b"first", big, b"last"]
