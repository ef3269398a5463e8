"""Regression tests for the client's resilience defects, through a real standalone."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from anabranch.client import ScalingPolicy, StreamConfiguration, StreamManager, StreamSealedError
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process

LEFT_OPEN = '''
import asyncio, sys, time
from anabranch.client import ReaderGroupConfig, StreamManager
from anabranch.client.blocking import connect

async def main(uri: str, scope: str) -> None:
    manager = StreamManager(uri)
    await manager.create_scope(scope)
    await manager.create_stream(scope, "s")
    writer = manager.create_writer(scope, "s")
    await (await writer.write_event(b"hello"))
    group = await manager.create_reader_group(scope, "g", ReaderGroupConfig.for_streams(scope, "s"))
    reader = await group.create_reader("r1")
    await reader.read_next_event(timeout=5)
    await reader.read_next_event(timeout=0.2)  # leaves a long-poll read at the tail in flight
    await writer.write_event(b"unflushed")
    print("leaving", time.monotonic(), flush=True)

def blocking(uri: str, scope: str) -> None:
    manager = connect(uri)
    manager.create_scope(scope)
    manager.create_stream(scope, "s")
    writer = manager.create_writer(scope, "s")
    writer.write_event(b"hello").result()
    group = manager.create_reader_group(scope, "g", ReaderGroupConfig.for_streams(scope, "s"))
    reader = group.create_reader("r1")
    reader.read_next_event(timeout=5)
    reader.read_next_event(timeout=0.2)
    print("leaving", time.monotonic(), flush=True)

if sys.argv[3] == "async":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
else:
    blocking(sys.argv[1], sys.argv[2])
'''


@pytest.mark.parametrize("flavour", ["async", "blocking"])
def test_a_program_that_leaves_a_reader_and_writer_open_exits_within_a_second(
        shared_standalone: Standalone, tmp_path: Path, flavour: str) -> None:
    script = tmp_path / "left_open.py"
    script.write_text(LEFT_OPEN)
    scope = f"exit{uuid.uuid4().hex[:8]}"
    done = subprocess.run([sys.executable, str(script), shared_standalone.controller_uri, scope, flavour],
                          capture_output=True, text=True, timeout=60)
    ended = time.monotonic()
    assert done.returncode == 0, done.stderr
    left = float(done.stdout.split("leaving", 1)[1].split()[0])
    assert ended - left < 1.0, f"exit took {ended - left:.2f} s"
    assert "Task was destroyed" not in done.stderr


async def test_byte_stream_writer_on_a_sealed_stream_raises_stream_sealed_at_once(
        shared_standalone: Standalone) -> None:
    scope = f"bs{uuid.uuid4().hex[:8]}"
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, "bytes", StreamConfiguration(ScalingPolicy.fixed(1)))
        writer = await manager.create_byte_stream_writer(scope, "bytes")
        await writer.write(b"before")
        await writer.flush()
        await manager.seal_stream(scope, "bytes")
        started = time.monotonic()
        await writer.write(b"after")
        with pytest.raises(StreamSealedError):
            await asyncio.wait_for(writer.flush(), 5)
        with pytest.raises(StreamSealedError):
            await writer.write(b"again")
        with pytest.raises(StreamSealedError):
            await manager.create_byte_stream_writer(scope, "bytes")
        assert time.monotonic() - started < 2
