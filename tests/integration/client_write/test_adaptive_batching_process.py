"""Adaptive batching and the writer's fast paths against a real ``anabranch standalone``.

A lone event must not wait for ``linger``; a flood must batch; the open block must go out when an ack makes
room in the in-flight window; ``write_event`` for a known key makes no coroutine; ``write_events`` keeps order and
exactly-once. ``linger`` is set far above every timeout here, so a test passes only if no event waits for it.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from client_write_helpers import events_by_segment

from anabranch.client import ClientConfig, ScalingPolicy, StreamConfiguration, StreamManager
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process

LONG_LINGER = 120.0
"""Far longer than any timeout below: an event that waited for the linger timer would fail the test."""


async def _stream(manager: StreamManager, segments: int = 1) -> tuple[str, str]:
    scope, stream = f"s{uuid.uuid4().hex[:8]}", "batching"
    await manager.create_scope(scope)
    await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(segments)))
    return scope, stream


async def test_a_lone_event_is_sent_at_once_and_an_ack_sends_the_open_block(
        shared_standalone: Standalone) -> None:
    config = ClientConfig(shared_standalone.controller_uri, linger=LONG_LINGER)
    async with StreamManager(config) as manager:
        scope, stream = await _stream(manager)
        writer = manager.create_writer(scope, stream)
        for i in range(3):  # paced lone events: each is acked without waiting for the linger timer
            ack = await writer.write_event(f"lone-{i}".encode(), "k")
            await asyncio.wait_for(ack, 10)
        # a burst with yields: blocks opened while the window is full wait for an ack, not for the linger
        acks = []
        for i in range(2_000):
            acks.append(await writer.write_event(f"burst-{i}".encode(), f"k{i % 7}"))
            if i % 10 == 9:
                await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(*acks), 20)
        (segment_writer,) = writer._writers.values()
        sent = segment_writer.statistics()["blocks_sent"]
        assert 3 < sent < 3 + 2_000 // 10, f"{sent} blocks for 3 lone events and a burst of 2000 with 200 yields"
        await writer.close()
        found = await events_by_segment(manager, scope, stream, max_epoch=0, max_number=1)
        (events,) = found.values()
        assert events == [f"lone-{i}".encode() for i in range(3)] + [f"burst-{i}".encode() for i in range(2_000)]


async def test_write_event_for_a_known_key_needs_no_coroutine(shared_standalone: Standalone) -> None:
    async with StreamManager(shared_standalone.controller_uri) as manager:
        scope, stream = await _stream(manager)
        writer = manager.create_writer(scope, stream)
        first = writer.write_event(b"first", "key")
        assert asyncio.iscoroutine(first)  # an unknown key is routed (a controller call, maybe)
        await (await first)
        queued = writer.write_event(b"second", "key")
        assert isinstance(queued, asyncio.Future) and queued.done()
        assert writer.write_event(b"third", "key") is queued  # one done future per block, not per event
        await asyncio.wait_for(queued.result(), 10)
        await writer.close()


async def test_write_events_keeps_order_and_exactly_once_across_blocks(shared_standalone: Standalone) -> None:
    config = ClientConfig(shared_standalone.controller_uri, max_block_events=100, linger=LONG_LINGER)
    async with StreamManager(config) as manager:
        scope, stream = await _stream(manager, segments=3)
        writer = manager.create_writer(scope, stream)
        batches = {key: [f"{key}:{i}".encode() for i in range(1_000)] for key in ("a", "b", "c")}
        acks = [await writer.write_events(events, key) for key, events in batches.items()]
        acks.append(await writer.write_events([b"no-key-1", b"no-key-2"]))
        acks.append(await writer.write_events([]))
        await asyncio.wait_for(asyncio.gather(*acks), 20)
        await writer.close()
        found = await events_by_segment(manager, scope, stream, max_epoch=0, max_number=3)
        per_key: dict[str, list[bytes]] = {}
        unkeyed: list[bytes] = []
        for events in found.values():
            for event in events:
                if event.startswith(b"no-key"):
                    unkeyed.append(event)
                else:
                    per_key.setdefault(event.decode().split(":")[0], []).append(event)
        assert per_key == batches
        assert unkeyed == [b"no-key-1", b"no-key-2"]  # a batch without a key goes to one segment, in order
