"""Conformance suites for LTS: ``ChunkStorageConformance`` and ``SegmentStorageConformance`` (pytest, async).

- ``ChunkStorageConformance``: provide the fixture ``chunk_storage`` (a fresh, empty ``ChunkStorage``).
- ``SegmentStorageConformance``: provide the fixture ``storage_factory``: an async callable returning an
  OPENED ``SegmentStorage`` over the same backing store on every call (a later call simulates a restart;
  the suite closes the previous instance first). Use small chunks (<= 256 bytes) and frequent metadata
  snapshots so that reads spanning chunks and snapshot replay are exercised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from anabranch.storage.interfaces import (
    BadStorageOffsetError,
    ChunkExistsError,
    ChunkNotFoundError,
    ChunkStorage,
    SegmentStorage,
    StorageError,
    StorageSegmentExistsError,
    StorageSegmentInfo,
    StorageSegmentNotFoundError,
    StorageSegmentNotSealedError,
    StorageSegmentSealedError,
)

StorageFactory = Callable[[], Awaitable[SegmentStorage]]
SEGMENT = "scope/stream/0.#epoch.0"
TXN_SEGMENT = "scope/stream/0.#epoch.0#transaction.00000000000000000000000000000001"


def pattern(length: int, seed: int = 0) -> bytes:
    """Deterministic non-repeating-looking bytes, so misplaced ranges are caught."""
    return bytes((seed + i * 7 + i // 251) % 256 for i in range(length))


class ChunkStorageConformance:
    """Every ``ChunkStorage`` backend must pass these tests."""

    async def test_create_exists_length_delete(self, chunk_storage: ChunkStorage) -> None:
        assert not await chunk_storage.exists("a/b.c-1")
        await chunk_storage.create("a/b.c-1")
        assert await chunk_storage.exists("a/b.c-1")
        assert await chunk_storage.length("a/b.c-1") == 0
        with pytest.raises(ChunkExistsError):
            await chunk_storage.create("a/b.c-1")
        await chunk_storage.delete("a/b.c-1")
        assert not await chunk_storage.exists("a/b.c-1")

    async def test_missing_chunk_raises_not_found(self, chunk_storage: ChunkStorage) -> None:
        with pytest.raises(ChunkNotFoundError):
            await chunk_storage.length("missing")
        with pytest.raises(ChunkNotFoundError):
            await chunk_storage.read("missing", 0, 1)
        with pytest.raises(ChunkNotFoundError):
            await chunk_storage.write("missing", 0, b"x")
        with pytest.raises(ChunkNotFoundError):
            await chunk_storage.delete("missing")

    async def test_write_then_read_ranges(self, chunk_storage: ChunkStorage) -> None:
        data = pattern(300_000)
        await chunk_storage.create("c")
        assert await chunk_storage.write("c", 0, memoryview(data)) == len(data)
        assert await chunk_storage.length("c") == len(data)
        assert await chunk_storage.read("c", 0, len(data)) == data
        assert await chunk_storage.read("c", 1000, 10) == data[1000:1010]
        assert await chunk_storage.read("c", len(data) - 5, 100) == data[-5:]
        assert await chunk_storage.read("c", len(data), 10) == b""
        with pytest.raises(BadStorageOffsetError):
            await chunk_storage.read("c", len(data) + 1, 1)
        with pytest.raises(BadStorageOffsetError):
            await chunk_storage.read("c", -1, 1)

    async def test_append_follows_supports_append(self, chunk_storage: ChunkStorage) -> None:
        await chunk_storage.create("c")
        await chunk_storage.write("c", 0, b"hello ")
        with pytest.raises(BadStorageOffsetError):
            await chunk_storage.write("c", 2, b"x")
        if chunk_storage.supports_append:
            await chunk_storage.write("c", 6, bytearray(b"world"))
            assert await chunk_storage.read("c", 0, 100) == b"hello world"
        else:
            with pytest.raises(BadStorageOffsetError):
                await chunk_storage.write("c", 6, b"world")
            assert await chunk_storage.read("c", 0, 100) == b"hello "

    async def test_write_must_start_at_length(self, chunk_storage: ChunkStorage) -> None:
        await chunk_storage.create("c")
        with pytest.raises(BadStorageOffsetError):
            await chunk_storage.write("c", 5, b"x")
        assert await chunk_storage.length("c") == 0

    async def test_list_by_prefix(self, chunk_storage: ChunkStorage) -> None:
        for name in ["ns-a/meta/j-1", "ns-a/data/x.1", "ns-a/data/x.2", "ns-b/data/x.1"]:
            await chunk_storage.create(name)
        assert sorted(await chunk_storage.list("ns-a/data/")) == ["ns-a/data/x.1", "ns-a/data/x.2"]
        assert sorted(await chunk_storage.list("ns-a/")) == ["ns-a/data/x.1", "ns-a/data/x.2", "ns-a/meta/j-1"]
        assert len(await chunk_storage.list()) == 4
        await chunk_storage.delete("ns-a/data/x.1")
        assert await chunk_storage.list("ns-a/data/") == ["ns-a/data/x.2"]

    async def test_unsafe_names_are_refused(self, chunk_storage: ChunkStorage) -> None:
        for name in ["", "a//b", "../x", "a/./b", "x#y", "/abs"]:
            with pytest.raises(StorageError):
                await chunk_storage.create(name)

    async def test_concurrent_writes_to_distinct_chunks(self, chunk_storage: ChunkStorage) -> None:
        names = [f"p/c{i}" for i in range(20)]

        async def fill(index: int, name: str) -> None:
            await chunk_storage.create(name)
            await chunk_storage.write(name, 0, pattern(5000, index))

        await asyncio.wait_for(asyncio.gather(*(fill(i, n) for i, n in enumerate(names))), 60)
        for index, name in enumerate(names):
            assert await chunk_storage.read(name, 0, 5000) == pattern(5000, index)


async def _reopen(storage: SegmentStorage, factory: StorageFactory) -> SegmentStorage:
    await storage.close()
    return await factory()


class SegmentStorageConformance:
    """Every ``SegmentStorage`` must pass these tests."""

    async def test_create_info_exists(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        assert not await storage.exists(SEGMENT)
        await storage.create(SEGMENT)
        assert await storage.exists(SEGMENT)
        assert await storage.get_info(SEGMENT) == StorageSegmentInfo(SEGMENT, 0, 0, False)
        with pytest.raises(StorageSegmentExistsError):
            await storage.create(SEGMENT)
        await storage.close()

    async def test_missing_segment_raises_not_found(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        for call in (
            storage.get_info("nope"),
            storage.write("nope", 0, b"x"),
            storage.read("nope", 0, 1),
            storage.seal("nope"),
            storage.truncate("nope", 0),
            storage.delete("nope"),
        ):
            with pytest.raises(StorageSegmentNotFoundError):
                await call
        await storage.close()

    async def test_writes_append_and_reads_span_chunks(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        await storage.create(SEGMENT)
        data = pattern(5000)
        offset = 0
        for size in [1, 10, 100, 255, 256, 257, 1000, 3121]:
            await storage.write(SEGMENT, offset, data[offset : offset + size])
            offset += size
        assert (await storage.get_info(SEGMENT)).length == 5000
        assert await storage.read(SEGMENT, 0, 5000) == data
        for start, length in [(0, 1), (255, 2), (300, 1700), (4999, 10), (5000, 10), (17, 0)]:
            assert await storage.read(SEGMENT, start, length) == data[start : start + length]
        await storage.close()

    async def test_write_accepts_a_sequence_of_buffers(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        await storage.create(SEGMENT)
        await storage.write(SEGMENT, 0, [b"abc", bytearray(b"def"), memoryview(pattern(600))])
        assert await storage.read(SEGMENT, 0, 6) == b"abcdef"
        assert await storage.read(SEGMENT, 6, 600) == pattern(600)
        await storage.close()

    async def test_write_at_wrong_offset_is_refused(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        await storage.create(SEGMENT)
        await storage.write(SEGMENT, 0, b"12345")
        for offset in (0, 4, 6):
            with pytest.raises(BadStorageOffsetError):
                await storage.write(SEGMENT, offset, b"x")
        assert await storage.read(SEGMENT, 0, 100) == b"12345"
        with pytest.raises(BadStorageOffsetError):
            await storage.read(SEGMENT, 6, 1)
        await storage.close()

    async def test_seal_stops_writes(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        await storage.create(SEGMENT)
        await storage.write(SEGMENT, 0, b"data")
        await storage.seal(SEGMENT)
        await storage.seal(SEGMENT)
        assert (await storage.get_info(SEGMENT)).sealed
        with pytest.raises(StorageSegmentSealedError):
            await storage.write(SEGMENT, 4, b"more")
        assert await storage.read(SEGMENT, 0, 10) == b"data"
        await storage.close()

    async def test_concat_relinks_source_onto_target(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        await storage.create(SEGMENT)
        await storage.create(TXN_SEGMENT)
        target_data, source_data, tail = pattern(700, 1), pattern(900, 2), pattern(300, 3)
        await storage.write(SEGMENT, 0, target_data)
        await storage.write(TXN_SEGMENT, 0, source_data)
        with pytest.raises(StorageSegmentNotSealedError):
            await storage.concat(SEGMENT, TXN_SEGMENT)
        await storage.seal(TXN_SEGMENT)
        await storage.concat(SEGMENT, TXN_SEGMENT)
        assert not await storage.exists(TXN_SEGMENT)
        assert (await storage.get_info(SEGMENT)).length == 1600
        await storage.write(SEGMENT, 1600, tail)
        assert await storage.read(SEGMENT, 0, 5000) == target_data + source_data + tail
        storage = await _reopen(storage, storage_factory)
        assert await storage.read(SEGMENT, 0, 5000) == target_data + source_data + tail
        assert not await storage.exists(TXN_SEGMENT)
        await storage.close()

    async def test_concat_into_sealed_target_is_refused(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        await storage.create(SEGMENT)
        await storage.create(TXN_SEGMENT)
        await storage.seal(SEGMENT)
        await storage.seal(TXN_SEGMENT)
        with pytest.raises(StorageSegmentSealedError):
            await storage.concat(SEGMENT, TXN_SEGMENT)
        assert await storage.exists(TXN_SEGMENT)
        await storage.close()

    async def test_concat_of_empty_source(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        await storage.create(SEGMENT)
        await storage.create(TXN_SEGMENT)
        await storage.write(SEGMENT, 0, b"abc")
        await storage.seal(TXN_SEGMENT)
        await storage.concat(SEGMENT, TXN_SEGMENT)
        await storage.write(SEGMENT, 3, b"def")
        assert await storage.read(SEGMENT, 0, 10) == b"abcdef"
        await storage.close()

    async def test_truncate_moves_start_offset(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        await storage.create(SEGMENT)
        data = pattern(3000)
        await storage.write(SEGMENT, 0, data[:1000])
        await storage.write(SEGMENT, 1000, data[1000:])
        await storage.truncate(SEGMENT, 1500)
        await storage.truncate(SEGMENT, 1200)
        assert (await storage.get_info(SEGMENT)).start_offset == 1500
        with pytest.raises(BadStorageOffsetError):
            await storage.read(SEGMENT, 1499, 1)
        assert await storage.read(SEGMENT, 1500, 3000) == data[1500:]
        with pytest.raises(BadStorageOffsetError):
            await storage.truncate(SEGMENT, 3001)
        await storage.truncate(SEGMENT, 3000)
        await storage.write(SEGMENT, 3000, b"tail")
        assert await storage.read(SEGMENT, 3000, 10) == b"tail"
        storage = await _reopen(storage, storage_factory)
        assert await storage.get_info(SEGMENT) == StorageSegmentInfo(SEGMENT, 3004, 3000, False)
        assert await storage.read(SEGMENT, 3000, 10) == b"tail"
        await storage.close()

    async def test_delete_then_recreate(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        await storage.create(SEGMENT)
        await storage.write(SEGMENT, 0, pattern(1000))
        await storage.seal(SEGMENT)
        await storage.delete(SEGMENT)
        assert not await storage.exists(SEGMENT)
        await storage.create(SEGMENT)
        assert await storage.get_info(SEGMENT) == StorageSegmentInfo(SEGMENT, 0, 0, False)
        storage = await _reopen(storage, storage_factory)
        assert await storage.get_info(SEGMENT) == StorageSegmentInfo(SEGMENT, 0, 0, False)
        await storage.close()

    async def test_reopen_gives_the_same_state(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        expected: dict[str, bytes] = {}
        for i in range(12):
            name = f"scope/stream-{i % 3}/{i}.#epoch.{i % 2}"
            data = pattern(50 + i * 97, i)
            await storage.create(name)
            await storage.write(name, 0, data[:40])
            await storage.write(name, 40, data[40:])
            expected[name] = data
            if i % 4 == 0:
                await storage.seal(name)
        await storage.truncate("scope/stream-1/1.#epoch.1", 30)
        await storage.delete("scope/stream-2/2.#epoch.0")
        del expected["scope/stream-2/2.#epoch.0"]
        infos = {name: await storage.get_info(name) for name in expected}
        for _ in range(2):
            storage = await _reopen(storage, storage_factory)
            assert {name: await storage.get_info(name) for name in expected} == infos
            for name, data in expected.items():
                start = infos[name].start_offset
                assert await storage.read(name, start, len(data)) == data[start:]
            assert not await storage.exists("scope/stream-2/2.#epoch.0")
        name = "scope/stream-1/1.#epoch.1"
        await storage.write(name, len(expected[name]), b"appended after reopen")
        storage = await _reopen(storage, storage_factory)
        assert await storage.read(name, len(expected[name]), 100) == b"appended after reopen"
        await storage.close()

    async def test_concurrent_writes_to_many_segments(self, storage_factory: StorageFactory) -> None:
        storage = await storage_factory()
        names = [f"s/t/{i}" for i in range(10)]

        async def fill(index: int, name: str) -> None:
            await storage.create(name)
            data = pattern(2000, index)
            for offset in range(0, 2000, 400):
                await storage.write(name, offset, data[offset : offset + 400])

        await asyncio.wait_for(asyncio.gather(*(fill(i, n) for i, n in enumerate(names))), 60)
        storage = await _reopen(storage, storage_factory)
        for index, name in enumerate(names):
            assert await storage.read(name, 0, 2000) == pattern(2000, index)
        await storage.close()
