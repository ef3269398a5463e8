"""Our routing-key hash puts every key in the same segment as the official (Rust-based) Python client."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from client_write_helpers import events_by_segment

from anabranch.client import ScalingPolicy, StreamConfiguration, StreamManager
from anabranch.client.hashing import StreamSegments
from anabranch.testing.processes import Standalone

pravega_client = pytest.importorskip("pravega_client")
pytestmark = pytest.mark.process


def _write_with_official_client(uri: str, scope: str, stream: str, keys: list[str]) -> None:
    manager = pravega_client.StreamManager(uri)
    writer = manager.create_writer(scope, stream)
    for key in keys:
        writer.write_event(key, routing_key=key)
    writer.flush()


async def test_keys_land_where_the_official_client_puts_them(shared_standalone: Standalone) -> None:
    scope, stream = f"h{uuid.uuid4().hex[:8]}", "hashed"
    keys = [f"key-{i}" for i in range(60)] + ["hello", "", "ünïcödé", "emoji-😀"]
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(7)))
        await asyncio.wait_for(asyncio.to_thread(_write_with_official_client, shared_standalone.controller_uri,
                                                 scope, stream, keys), 60)
        ours = StreamSegments(await manager.get_current_segments(scope, stream))
        found = await events_by_segment(manager, scope, stream, 0, 7)
        placed = {event.decode(): name for name, events in found.items() for event in events}
        assert set(placed) == set(keys)
        for key in keys:
            assert placed[key] == ours.segment_for_key(key).qualified_name, key
