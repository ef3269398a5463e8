"""EventStreamWriter against an in-memory segment store: batching, per-key order, exactly once, scaling."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from client_write_fakes import FakeController, FakeSegmentStore, make_context, segment_name

from anabranch.client.errors import SegmentStoreError, StreamSealedError
from anabranch.client.event_writer import EventStreamWriter
from anabranch.client.hashing import hash_routing_key


def _by_key(store: FakeSegmentStore, names: list[str]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = defaultdict(list)
    for name in names:
        for event in store.events(name):
            key, number = event.decode().split(":")
            seen[key].append(int(number))
    return seen


async def test_keyed_events_land_in_the_hashed_segment_in_order(
        fake_store: FakeSegmentStore, fake_controller: FakeController) -> None:
    segments = fake_controller.create_stream("sc", "st", 4)
    context = make_context(fake_controller)
    writer: EventStreamWriter[Any] = EventStreamWriter(context, "sc", "st")
    async with writer:
        for i in range(2000):
            await writer.write_event(f"k{i % 37}:{i}", routing_key=f"k{i % 37}")
    names = [s.qualified_name for s in segments]
    assert sum(len(fake_store.events(n)) for n in names) == 2000
    assert fake_store.appends < 2000 // 4, "events must be batched into blocks"
    for s in segments:
        for event in fake_store.events(s.qualified_name):
            position = hash_routing_key(event.decode().split(":")[0])
            assert s.min_key <= position <= s.max_key
    for numbers in _by_key(fake_store, names).values():
        assert numbers == sorted(numbers)
    await context.pool.close()


async def test_ack_future_completes_when_durable(fake_store: FakeSegmentStore, fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "st", 1)
    context = make_context(fake_controller)
    writer: EventStreamWriter[bytes] = EventStreamWriter(context, "sc", "st")
    fake_store.hold_acks = True
    ack = await writer.write_event(b"x")
    await asyncio.sleep(0.05)
    assert not ack.done()
    fake_store.hold_acks = False
    fake_store.drop_connections()
    await asyncio.wait_for(ack, 10)
    assert fake_store.events(segment_name("sc", "st", 0)) == [b"x"], "the retransmission was deduplicated"
    await writer.close()
    await context.pool.close()


async def test_reconnect_resends_only_unacked_blocks(fake_store: FakeSegmentStore,
                                                     fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "st", 1)
    context = make_context(fake_controller, max_block_events=10)
    writer: EventStreamWriter[str] = EventStreamWriter(context, "sc", "st")
    fake_store.hold_acks = True
    for i in range(200):
        await writer.write_event(f"a:{i}", routing_key="a")
        if i in (10, 20, 30, 100, 150):
            fake_store.hold_acks = i < 30
            fake_store.drop_connections()
            await asyncio.sleep(0.01)
    await asyncio.wait_for(writer.flush(), 10)
    numbers = [int(e.decode().split(":")[1]) for e in fake_store.events(segment_name("sc", "st", 0))]
    assert numbers == list(range(200))
    await writer.close()
    await context.pool.close()


async def test_scale_reroutes_pending_events_keeping_key_order(fake_store: FakeSegmentStore,
                                                               fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "st", 2)
    context = make_context(fake_controller, max_block_events=20)
    writer: EventStreamWriter[str] = EventStreamWriter(context, "sc", "st")
    keys = [f"key-{k}" for k in range(50)]
    for i in range(3000):
        await writer.write_event(f"{keys[i % 50]}:{i}", routing_key=keys[i % 50])
        if i == 1000:
            fake_controller.scale("sc", "st", 0, 2, 2, 1)
        if i == 2000:
            fake_controller.scale("sc", "st", 1, 3, 4, 2)
        if i == 2500:
            fake_controller.merge("sc", "st", [(1 << 32) | 2, (1 << 32) | 3], 7, 3)
    await asyncio.wait_for(writer.flush(), 20)
    by_epoch = sorted(fake_store.segments, key=lambda n: int(n.rsplit(".", 1)[1]))
    seen = _by_key(fake_store, by_epoch)
    for key in keys:
        assert seen[key] == [i for i in range(3000) if keys[i % 50] == key], f"order or loss for {key}"
    assert any(fake_store.events(n) for n in by_epoch if n.endswith(".#epoch.2"))
    assert fake_store.events("sc/st/7.#epoch.3"), "events after the merge go to the merged segment"
    await writer.close()
    await context.pool.close()


async def test_sealed_stream_fails_pending_writes(fake_store: FakeSegmentStore,
                                                  fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "st", 1)
    context = make_context(fake_controller)
    writer: EventStreamWriter[bytes] = EventStreamWriter(context, "sc", "st")
    await (await writer.write_event(b"before"))
    fake_store.segments[segment_name("sc", "st", 0)].sealed = True
    ack = await writer.write_event(b"after")
    with pytest.raises(StreamSealedError):
        await asyncio.wait_for(ack, 10)
    with pytest.raises(StreamSealedError):
        await writer.write_event(b"later")
    await writer.close(flush=False)
    await context.pool.close()


async def test_large_event_goes_through_a_transient_segment(fake_store: FakeSegmentStore,
                                                            fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "st", 1)
    context = make_context(fake_controller)
    big = bytes(range(256)) * (40 * 1024 + 3)
    writer: EventStreamWriter[Any] = EventStreamWriter(context, "sc", "st")
    async with writer:
        await writer.write_event(b"small-1")
        await writer.write_event(big)
        await writer.write_event(b"small-2")
    assert fake_store.events(segment_name("sc", "st", 0)) == [b"small-1", big, b"small-2"]
    await context.pool.close()


async def test_wrong_host_is_resolved_again(fake_store: FakeSegmentStore, fake_controller: FakeController) -> None:
    other = await FakeSegmentStore().start()
    fake_store.wrong_port = other.port
    fake_store.wrong_host = 1
    other.segments.clear()
    fake_controller.create_stream("sc", "st", 1)
    original = other._handle

    def wrong_host(item: object) -> object:
        rid = getattr(item, "request_id", -1)
        if type(item).__name__ == "SetupAppend":
            from anabranch.protocol import commands as c

            return c.WrongHost(rid, item.segment, "", "")  # type: ignore[attr-defined]
        return original(item)  # type: ignore[arg-type]

    other._handle = wrong_host  # type: ignore[method-assign,assignment]
    context = make_context(fake_controller)
    writer: EventStreamWriter[bytes] = EventStreamWriter(context, "sc", "st")
    await asyncio.wait_for(await writer.write_event(b"x"), 10)
    assert fake_store.events(segment_name("sc", "st", 0)) == [b"x"]
    await writer.close()
    await context.pool.close()
    await other.stop()


async def test_keyless_events_spread_over_segments(fake_store: FakeSegmentStore,
                                                   fake_controller: FakeController) -> None:
    segments = fake_controller.create_stream("sc", "st", 4)
    context = make_context(fake_controller)
    writer: EventStreamWriter[bytes] = EventStreamWriter(context, "sc", "st")
    for _ in range(400):
        await writer.write_event(b"e")
    await writer.close()
    assert all(len(fake_store.events(s.qualified_name)) > 40 for s in segments)
    await context.pool.close()


async def test_a_server_error_reply_reaches_the_caller_and_the_writer_goes_on(
        fake_store: FakeSegmentStore, fake_controller: FakeController) -> None:
    segments = fake_controller.create_stream("sc", "full", 1)
    writer: EventStreamWriter[Any] = EventStreamWriter(make_context(fake_controller), "sc", "full")
    async with writer:
        await (await writer.write_event(b"first"))
        fake_store.append_error = "disk full: no space left on the segment store's volume"
        with pytest.raises(SegmentStoreError) as refused:
            await asyncio.wait_for(await writer.write_event(b"refused"), 5)
        assert refused.value.server_message.startswith("disk full")
        assert refused.value.error_code == 7
        fake_store.append_error = None
        await asyncio.wait_for(await writer.write_event(b"later"), 5)
    assert fake_store.events(segments[0].qualified_name) == [b"first", b"later"]


async def test_writes_after_close_fail_on_the_fast_path_too(fake_store: FakeSegmentStore,
                                                            fake_controller: FakeController) -> None:
    from anabranch.client.errors import ClientClosedError

    fake_controller.create_stream("sc", "st", 1)
    context = make_context(fake_controller)
    writer: EventStreamWriter[bytes] = EventStreamWriter(context, "sc", "st")
    await asyncio.wait_for(await writer.write_event(b"a", "known"), 10)
    await writer.close()
    with pytest.raises(ClientClosedError):
        await writer.write_event(b"b", "known")  # the key's segment writer is cached: the fast path
    with pytest.raises(ClientClosedError):
        await writer.write_event(b"c", "new key")
    with pytest.raises(ClientClosedError):
        await writer.write_events([b"d", b"e"], "known")
    assert fake_store.events(segment_name("sc", "st", 0)) == [b"a"]
    await context.pool.close()


async def test_backpressure_makes_write_event_wait_then_gives_the_blocks_future(
        fake_store: FakeSegmentStore, fake_controller: FakeController) -> None:
    fake_controller.create_stream("sc", "st", 1)
    context = make_context(fake_controller, max_block_events=1, max_inflight_blocks=1)
    writer: EventStreamWriter[bytes] = EventStreamWriter(context, "sc", "st")
    await asyncio.wait_for(await writer.write_event(b"first", "k"), 10)
    fake_store.hold_acks = True
    results = [writer.write_event(f"e{i}".encode(), "k") for i in range(2)]  # one-event blocks, none sent yet
    assert all(isinstance(r, asyncio.Future) and r.done() for r in results)  # room left: no coroutine
    backlogged = writer.write_event(b"over", "k")
    assert asyncio.iscoroutine(backlogged)  # more than 2 x max_inflight_blocks ready: wait for room
    waiting = asyncio.ensure_future(backlogged)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    fake_store.hold_acks = False
    fake_store.drop_connections()  # the resend after reconnecting is acked
    ack = await asyncio.wait_for(waiting, 10)
    await asyncio.wait_for(ack, 10)
    assert fake_store.events(segment_name("sc", "st", 0)) == [b"first", b"e0", b"e1", b"over"]
    await writer.close()
    await context.pool.close()
