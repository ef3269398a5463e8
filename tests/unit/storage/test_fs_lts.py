"""Filesystem chunk storage, and ChunkedSegmentStorage on it, pass the LTS conformance suites; concurrent creates
and writes are batched into one worker-thread job with one directory fsync, and each call keeps its own outcome."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from anabranch.storage import chunks_fs
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_fs import FileSystemChunkStorage
from anabranch.storage.interfaces import BadStorageOffsetError, ChunkExistsError, ChunkNotFoundError
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


async def test_concurrent_creates_and_writes_share_one_job_and_one_directory_fsync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = FileSystemChunkStorage(tmp_path)
    await chunks.create("ns/data/warm-up")  # the directories exist from here on
    synced: list[str] = []
    real_fsync_directory = chunks_fs.fsync_directory

    def counting_fsync_directory(directory: str) -> None:
        synced.append(directory)
        real_fsync_directory(directory)

    monkeypatch.setattr(chunks_fs, "fsync_directory", counting_fsync_directory)
    names = [f"ns/data/seg-{i}" for i in range(20)]
    await asyncio.gather(*(chunks.create(name) for name in names))
    assert synced == [str(tmp_path / "ns" / "data")]
    written = await asyncio.gather(*(chunks.write(name, 0, name.encode()) for name in names))
    assert written == [len(name) for name in names]
    assert all((tmp_path / name).read_bytes() == name.encode() for name in names)


async def test_synced_writes_are_dropped_from_the_page_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    advised: list[tuple[int, int, int]] = []

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append((offset, length, advice))

    monkeypatch.setattr(chunks_fs, "_FADVISE", fadvise)
    chunks = FileSystemChunkStorage(tmp_path)
    await chunks.create("ns/data/a")
    await chunks.write("ns/data/a", 0, b"first")
    await chunks.write("ns/data/a", 5, [b"sec", b"ond"])
    assert advised == [(0, 5, os.POSIX_FADV_DONTNEED), (5, 6, os.POSIX_FADV_DONTNEED)]
    assert (tmp_path / "ns" / "data" / "a").read_bytes() == b"firstsecond"


async def test_one_failing_call_in_a_batch_fails_alone(tmp_path: Path) -> None:
    chunks = FileSystemChunkStorage(tmp_path)
    await chunks.create("ns/data/a")
    results = await asyncio.gather(chunks.create("ns/data/a"), chunks.create("ns/data/b"),
                                   chunks.write("ns/data/a", 5, b"wrong offset"), chunks.write("ns/data/a", 0, b"ok"),
                                   chunks.write("ns/data/missing", 0, b"x"), return_exceptions=True)
    assert isinstance(results[0], ChunkExistsError)
    assert results[1] is None
    assert isinstance(results[2], BadStorageOffsetError)
    assert results[3] == 2
    assert isinstance(results[4], ChunkNotFoundError)
    assert await chunks.list("ns/") == ["ns/data/a", "ns/data/b"]
    assert (tmp_path / "ns" / "data" / "a").read_bytes() == b"ok"
