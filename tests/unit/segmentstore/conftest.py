"""Fixtures for segment-store core tests: a store over a real file Tier-1 log (tmp_path) and LTS
that survives restarts, so tests can close, crash (abort) and reopen the same data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.storage_writer import StorageWriterConfig
from anabranch.segmentstore.store import SegmentStore
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.file_log import FileDurableDataLog
from anabranch.storage.memory_log import InMemoryDurableDataLog

MIB = 1024 * 1024


class StoreEnv:
    """Opens stores over the same Tier-1 and LTS data, as a restarted process would."""

    def __init__(self, root: Path, *, containers: int = 2, file_log: bool = True) -> None:
        self.root = root
        self.count = containers
        self.file_log = file_log
        self.chunks = InMemoryChunkStorage()
        self.memory_logs = [InMemoryDurableDataLog() for _ in range(containers)]
        self.store: SegmentStore | None = None

    async def open(self, *, cache_size: int = 64 * MIB, max_unflushed: int = 32 * MIB,
                   flush_threshold: int = 1024 * MIB) -> SegmentStore:
        containers = []
        for i in range(self.count):
            storage = ChunkedSegmentStorage(self.chunks, namespace=f"container-{i}", max_chunk_size=MIB)
            await storage.open()
            log = (FileDurableDataLog(self.root / "tier1" / str(i), file_size_limit=16 * 1024) if self.file_log
                   else self.memory_logs[i])
            config = StorageWriterConfig(max_unflushed_bytes=max_unflushed, flush_threshold=flush_threshold,
                                         flush_interval=3600.0)
            containers.append(SegmentContainer(i, log, storage, cache_size=cache_size, writer_config=config))
        self.store = SegmentStore(containers)
        await self.store.start()
        return self.store

    async def restart(self, *, crash: bool = False, **options: int) -> SegmentStore:
        assert self.store is not None
        if crash:
            await self.store.abort()
        else:
            await self.store.close()
        return await self.open(**options)

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[StoreEnv]:
    environment = StoreEnv(tmp_path)
    yield environment
    await environment.close()


@pytest.fixture
async def store(env: StoreEnv) -> SegmentStore:
    return await env.open()
