"""Automatic consumption-based retention through a real standalone: automatic checkpoints are acknowledged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from anabranch.client import ReaderGroupConfig, RetentionPolicy, StreamConfiguration, StreamManager
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process

SCOPE = "autoretained"


async def test_automatic_checkpoints_move_the_head_of_a_subscribed_stream(tmp_path: Path) -> None:
    server = Standalone(tmp_path / "data", None, None, "--autoscale-time-scale", "900")  # retention job every 2 s
    server.start()
    try:
        async with StreamManager(server.controller_uri) as manager:
            await manager.create_scope(SCOPE)
            await manager.create_stream(SCOPE, "s", StreamConfiguration(retention=RetentionPolicy.by_size(700)))
            writer = manager.create_writer(SCOPE, "s")
            written = 0

            async def feed() -> None:  # retention records cuts as data arrives: keep it arriving
                nonlocal written
                while True:
                    await writer.write_event(f"{written:06d}")
                    written += 1
                    await asyncio.sleep(0.005)

            config = ReaderGroupConfig.for_streams(SCOPE, "s", retention="automatic",
                                                   automatic_checkpoint_interval=0.2)
            group = await manager.create_reader_group(SCOPE, "g", config)
            reader = await group.create_reader("r1")
            feeding = asyncio.create_task(feed())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 45
            head = 0
            try:
                while head == 0 and loop.time() < deadline:
                    result = await reader.read_next_event(timeout=0.2)
                    assert result.checkpoint_name is None, "automatic checkpoints are silent"
                    head = (await manager.get_head_stream_cut(SCOPE, "s")).positions[0]
            finally:
                feeding.cancel()
            assert head > 0, "retention never truncated up to an automatic checkpoint"
            assert head <= max(reader.position.offsets.values()), "truncated past what the group had read"
            await reader.close()
    finally:
        server.kill()
