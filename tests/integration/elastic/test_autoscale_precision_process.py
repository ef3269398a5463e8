"""Auto-scale precision through a real ``anabranch standalone`` (time compressed 120 times: a 5 s cool-down).

One writer sends 100 events/s over 1,000 routing keys to a stream whose policy targets 20 events/s per segment
with a scale factor of 10: the load needs 5 segments. The stream splits once, into 5, and stays there: the new
segments start from their share of the parent's rate, not from the burst of events the writer held back during
the scale (before, that burst made each of them split again after its cool-down: about 10 segments).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from anabranch.client import ClientConfig, StreamManager
from anabranch.client.config import ScalingPolicy, StreamConfiguration
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process

RATE, TARGET, SCALE_FACTOR, NEEDED = 100, 20, 10, 5
SECONDS = 16.0


async def drive(uri: str) -> list[int]:
    """Write RATE events/s for SECONDS; the segment count after every half second."""
    counts: list[int] = []
    async with StreamManager(ClientConfig(uri)) as manager:
        await manager.create_scope("precision")
        policy = ScalingPolicy.by_event_rate(TARGET, SCALE_FACTOR, 1)
        await manager.create_stream("precision", "load", StreamConfiguration(scaling=policy))
        writer = manager.create_writer("precision", "load")
        sent = 0
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < SECONDS:
            due = int(elapsed * RATE) + 1
            while sent < due:
                await writer.write_event(b"event %d" % sent, routing_key=f"key-{sent % 1000}")
                sent += 1
            if int(elapsed * 2) > len(counts):
                await writer.flush()
                counts.append(len(await manager.get_current_segments("precision", "load")))
            await asyncio.sleep(0.02)
        await writer.close()
    return counts


async def test_a_steady_load_splits_once_into_what_it_needs(tmp_path: Path) -> None:
    server = Standalone(tmp_path / "data", None, None, "--autoscale-time-scale", "120")
    server.start()
    try:
        counts = await asyncio.wait_for(drive(server.controller_uri), SECONDS + 30)
    finally:
        server.stop()
    assert max(counts) >= 2, f"the stream never split: {counts}"
    assert max(counts) <= 1.5 * NEEDED, f"segment counts every 0.5 s: {counts}"
