"""Filesystem chunk storage, and ChunkedSegmentStorage on it, pass the LTS conformance suites."""

from __future__ import annotations

from pathlib import Path

import pytest

from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_fs import FileSystemChunkStorage
from anabranch.testing.lts_conformance import ChunkStorageConformance, SegmentStorageConformance, StorageFactory


class TestFileSystemChunkStorage(ChunkStorageConformance):
    @pytest.fixture
    def chunk_storage(self, tmp_path: Path) -> FileSystemChunkStorage:
        return FileSystemChunkStorage(tmp_path / "lts")


class TestChunkedSegmentStorageOnFileSystem(SegmentStorageConformance):
    @pytest.fixture
    def storage_factory(self, tmp_path: Path) -> StorageFactory:
        async def open_storage() -> ChunkedSegmentStorage:
            chunks = FileSystemChunkStorage(tmp_path / "lts")
            storage = ChunkedSegmentStorage(chunks, max_chunk_size=256, namespace="container-0", snapshot_every=5)
            await storage.open()
            return storage

        return open_storage


async def test_chunk_files_live_under_the_root(tmp_path: Path) -> None:
    chunks = FileSystemChunkStorage(tmp_path)
    await chunks.create("ns-a/data/seg.1")
    await chunks.write("ns-a/data/seg.1", 0, b"bytes")
    assert (tmp_path / "ns-a" / "data" / "seg.1").read_bytes() == b"bytes"
    assert await chunks.list("ns-a/da") == ["ns-a/data/seg.1"]
    assert await chunks.list("zzz/") == []
