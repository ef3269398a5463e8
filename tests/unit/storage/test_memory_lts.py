"""In-memory chunk storage, and ChunkedSegmentStorage on it (appending and object-store-like), pass the LTS suites."""

from __future__ import annotations

import pytest

from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.testing.lts_conformance import ChunkStorageConformance, SegmentStorageConformance, StorageFactory


class TestInMemoryChunkStorage(ChunkStorageConformance):
    @pytest.fixture
    def chunk_storage(self) -> InMemoryChunkStorage:
        return InMemoryChunkStorage()


class TestInMemoryObjectLikeChunkStorage(ChunkStorageConformance):
    @pytest.fixture
    def chunk_storage(self) -> InMemoryChunkStorage:
        return InMemoryChunkStorage(supports_append=False)


def chunked_factory(chunks: InMemoryChunkStorage) -> StorageFactory:
    async def open_storage() -> ChunkedSegmentStorage:
        storage = ChunkedSegmentStorage(chunks, max_chunk_size=256, namespace="container-1", snapshot_every=7)
        await storage.open()
        return storage

    return open_storage


class TestChunkedSegmentStorageOnMemory(SegmentStorageConformance):
    @pytest.fixture
    def storage_factory(self) -> StorageFactory:
        return chunked_factory(InMemoryChunkStorage())


class TestChunkedSegmentStorageOnObjectLikeMemory(SegmentStorageConformance):
    @pytest.fixture
    def storage_factory(self) -> StorageFactory:
        return chunked_factory(InMemoryChunkStorage(supports_append=False))
