"""A real process appending through ``open_segment_store`` is killed with SIGKILL mid-stream; every
append it reported as acked must be there exactly once, in order, after reopening the directory."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from anabranch.segmentstore.store import open_segment_store

WRITER = uuid.UUID(int=7)
NAMES = [f"sc/st/{i}.#epoch.0" for i in range(3)]
CHILD = """
import asyncio, sys, uuid
from pathlib import Path
from anabranch.segmentstore.errors import SegmentExistsError
from anabranch.segmentstore.store import open_segment_store

async def main():
    store = await open_segment_store(Path(sys.argv[1]), 2, cache_size=8 * 1024 * 1024)
    names = sys.argv[2:]
    writer = uuid.UUID(int=7)
    for name in names:
        try:
            await store.create_segment(name)
        except SegmentExistsError:
            pass
    async def write(name):
        event = max(await store.get_writer_event_number(name, writer), 0)
        while True:
            event += 1
            result = await store.append(name, f"{event};".encode() * 50, writer_id=writer, event_number=event)
            print(name, event, result.new_length, flush=True)
    await asyncio.gather(*(write(name) for name in names))

asyncio.run(main())
"""


def run_and_kill(data_dir: Path, acks_before_kill: int) -> dict[str, tuple[int, int]]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), *NAMES], stdout=subprocess.PIPE, text=True)
    acked: dict[str, tuple[int, int]] = {}
    try:
        assert child.stdout is not None
        for _ in range(acks_before_kill):
            line = child.stdout.readline()
            assert line, f"child exited early with {child.poll()}"
            name, event, length = line.split()
            acked[name] = (int(event), int(length))
    finally:
        child.kill()
        child.wait(timeout=30)
    return acked


@pytest.mark.process
async def test_acked_appends_survive_sigkill(tmp_path: Path) -> None:
    acked: dict[str, tuple[int, int]] = {}
    for round_ in range(2):
        acked.update(run_and_kill(tmp_path, 1500 * (round_ + 1)))
        store = await open_segment_store(tmp_path, 2)
        try:
            for name, (event, length) in acked.items():
                info = await store.get_info(name)
                last = await store.get_writer_event_number(name, WRITER)
                assert info.length >= length and last >= event
                data = bytearray()
                while len(data) < info.length:
                    data += (await store.read(name, len(data), 2 * 1024 * 1024)).data
                events = [int(e) for e in data.decode().split(";") if e][::50]
                assert events == list(range(1, last + 1))
        finally:
            await store.abort()
