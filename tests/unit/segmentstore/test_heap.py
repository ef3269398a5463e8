"""Freed heap memory goes back to the OS: ``HeapTrimmer`` and the storage writer's use of it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.heap import PROCESS_HEAP, HeapTrimmer
from anabranch.segmentstore.storage_writer import StorageWriterConfig
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.file_log import FileDurableDataLog

TIMEOUT = 30.0


def test_a_trim_runs_at_most_once_per_interval() -> None:
    calls: list[int] = []
    now = [100.0]
    trimmer = HeapTrimmer(min_interval=5.0, clock=lambda: now[0], trim=lambda pad: calls.append(pad) or 1)
    assert trimmer.trim() and calls == [0]
    now[0] += 4.9
    assert not trimmer.trim() and calls == [0]
    now[0] += 0.1
    assert trimmer.trim() and calls == [0, 0]
    assert trimmer.trims == 2


def test_without_malloc_trim_nothing_happens() -> None:
    trimmer = HeapTrimmer(trim=None)
    assert not trimmer.available and not trimmer.trim() and trimmer.trims == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_the_process_trimmer_finds_glibc_malloc_trim() -> None:
    assert PROCESS_HEAP.available


async def test_the_storage_writer_trims_after_releasing_idle_segments(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(PROCESS_HEAP, "_trim", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(PROCESS_HEAP, "min_interval", 0.0)
    storage = ChunkedSegmentStorage(InMemoryChunkStorage(), namespace="container-0")
    await storage.open()
    config = StorageWriterConfig(flush_interval=0.01, max_flush_delay=0.0, release_idle_after=0.0)
    container = SegmentContainer(0, FileDurableDataLog(tmp_path / "tier1"), storage, writer_config=config)
    await container.start()
    try:
        await container.create_segment("sc/st/0.#epoch.0")
        await container.append("sc/st/0.#epoch.0", b"bytes that go idle")
        segment_id = container.metadata.by_name["sc/st/0.#epoch.0"].segment_id
        async with asyncio.timeout(TIMEOUT):
            while segment_id in container.read_index.segments or not calls:
                await asyncio.sleep(0.01)
    finally:
        await container.close()
    assert calls and all(pad == 0 for pad in calls)


async def test_a_store_trims_the_heap_once_every_container_recovered(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.segmentstore.conftest import StoreEnv

    calls: list[int] = []
    monkeypatch.setattr(PROCESS_HEAP, "_trim", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(PROCESS_HEAP, "_last", None)
    env = StoreEnv(tmp_path)
    store = await env.open()
    try:
        assert calls == [0] and len(store.containers) == 2
    finally:
        await env.close()
