"""ChunkedSegmentStorage beyond the conformance suite: chunk layout, crash leftovers, journal tears and failures."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from anabranch.errors import DataCorruptionError
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_fs import FileSystemChunkStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.interfaces import Buffer, ChunkStorage, StorageError, StorageSegmentInfo
from anabranch.storage.metadata_journal import MetadataJournalFailedError, StorageFencedError
from anabranch.testing.lts_conformance import pattern

SEGMENT = "scope/stream/3.#epoch.1"


async def opened(chunks: InMemoryChunkStorage | FileSystemChunkStorage, **kwargs: int) -> ChunkedSegmentStorage:
    storage = ChunkedSegmentStorage(chunks, namespace="c", **{"max_chunk_size": 1000, **kwargs})
    await storage.open()
    return storage


async def data_chunks(chunks: InMemoryChunkStorage | FileSystemChunkStorage) -> list[str]:
    return [name for name in await chunks.list() if "/data/" in name]


async def meta_chunks(chunks: InMemoryChunkStorage | FileSystemChunkStorage) -> list[str]:
    return [name for name in await chunks.list() if "/meta/" in name]


async def test_appendable_backend_fills_chunks_before_rolling() -> None:
    chunks = InMemoryChunkStorage()
    storage = await opened(chunks, pack_limit=0)
    await storage.create(SEGMENT)
    for offset in range(0, 2500, 100):
        await storage.write(SEGMENT, offset, pattern(100, offset))
    names = await data_chunks(chunks)
    assert sorted([await chunks.length(name) for name in names]) == [500, 1000, 1000]
    assert all(re.fullmatch(r"ns-[^/]+/data/[0-9a-f]{24}", name) for name in names), names


async def test_object_store_backend_writes_one_chunk_per_write() -> None:
    chunks = InMemoryChunkStorage(supports_append=False)
    storage = await opened(chunks, pack_limit=0)
    await storage.create(SEGMENT)
    for offset in range(0, 500, 100):
        await storage.write(SEGMENT, offset, pattern(100))
    await storage.write(SEGMENT, 500, pattern(2500))
    assert len(await data_chunks(chunks)) == 5 + 3


async def test_chunk_longer_than_metadata_is_ignored_and_never_appended_to() -> None:
    chunks = InMemoryChunkStorage()
    storage = await opened(chunks, pack_limit=0)
    await storage.create(SEGMENT)
    await storage.write(SEGMENT, 0, b"acked")
    (tail,) = await data_chunks(chunks)
    await chunks.write(tail, 5, b"-unacked-bytes-written-before-a-crash")
    storage = await opened(chunks)
    assert await storage.get_info(SEGMENT) == StorageSegmentInfo(SEGMENT, 5, 0, False)
    await storage.write(SEGMENT, 5, b"+next")
    assert await storage.read(SEGMENT, 0, 100) == b"acked+next"
    storage = await opened(chunks)
    assert await storage.read(SEGMENT, 0, 100) == b"acked+next"


def names_of(count: int) -> list[str]:
    return [f"scope/stream-{i}/0.#epoch.0" for i in range(count)]


async def created(storage: ChunkedSegmentStorage, count: int) -> list[str]:
    """Create ``count`` new segments one by one; returns their names."""
    names = names_of(count)
    for name in names:
        await storage.create(name)
    return names


async def write_firsts(storage: ChunkedSegmentStorage, names: list[str]) -> None:
    """Create ``names`` and write each one's first bytes, all at once (as the storage writer flushes new tables)."""
    for name in names:
        await storage.create(name)
    await asyncio.gather(*(storage.write(name, 0, pattern(10 + i, i)) for i, name in enumerate(names)))


@pytest.mark.parametrize("snapshot_every", [1, 1_000_000])
async def test_first_writes_of_new_segments_share_one_pack(snapshot_every: int) -> None:
    chunks = InMemoryChunkStorage()
    storage = await opened(chunks, snapshot_every=snapshot_every, max_chunk_size=10_000)
    names = names_of(40)
    await write_firsts(storage, names)
    (pack,) = await data_chunks(chunks)
    assert await chunks.length(pack) == sum(10 + i for i in range(40))
    for reopen in (False, True):
        if reopen:  # from the journal, or (snapshot_every=1) from a snapshot
            storage = await opened(chunks, snapshot_every=snapshot_every, max_chunk_size=10_000)
        for i, name in enumerate(names):
            assert await storage.read(name, 3, 100) == pattern(10 + i, i)[3:]
    await storage.write(names[0], 10, b"second")  # a pack member is never appended to: its own chunk now
    await storage.write(names[0], 16, b"+third")  # ... which takes the next write
    assert len(await data_chunks(chunks)) == 2
    assert await storage.read(names[0], 0, 100) == pattern(10, 0) + b"second+third"


async def test_a_pack_is_deleted_with_its_last_member_and_not_before() -> None:
    chunks = InMemoryChunkStorage()
    storage = await opened(chunks, snapshot_every=3)
    deleted, truncated, source, kept = names_of(4)
    await write_firsts(storage, [deleted, truncated, source, kept])
    (pack,) = await data_chunks(chunks)
    target = "scope/target/0.#epoch.0"
    await storage.create(target)
    await storage.write(target, 0, b"x" * 2000)  # larger than a pack member may be: chunks of its own
    await storage.delete(deleted)
    await storage.truncate(truncated, 5)
    await storage.seal(source)
    await storage.concat(target, source)
    storage = await opened(chunks, snapshot_every=3)  # the members are counted again from the metadata
    assert pack in await data_chunks(chunks)
    assert await storage.read(target, 2000, 100) == pattern(12, 2)
    assert await storage.read(kept, 0, 100) == pattern(13, 3)
    await storage.delete(target)
    await storage.delete(kept)
    assert pack in await data_chunks(chunks)  # the truncated segment still reads bytes 5..10 from it
    await storage.write(truncated, 11, b"own")
    await storage.truncate(truncated, 12)
    assert await data_chunks(chunks) != [] and pack not in await data_chunks(chunks)
    assert await storage.read(truncated, 12, 10) == b"wn"


async def test_a_failed_pack_write_fails_every_member_and_records_nothing() -> None:
    chunks = FailingChunks()
    storage = await opened(chunks)
    names = await created(storage, 5)
    chunks.failing_data = True
    outcomes = await asyncio.gather(*(storage.write(name, 0, b"lost") for name in names), return_exceptions=True)
    assert all(isinstance(outcome, StorageError) for outcome in outcomes), outcomes
    assert [(await storage.get_info(name)).length for name in names] == [0] * 5
    chunks.failing_data = False
    await asyncio.gather(*(storage.write(name, 0, b"kept") for name in names))
    storage = await opened(chunks)
    assert [await storage.read(name, 0, 10) for name in names] == [b"kept"] * 5


class StalledChunks(InMemoryChunkStorage):
    """Chunk storage whose data writes wait until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self.release = asyncio.Event()

    async def write(self, name: str, offset: int, data: Buffer | Sequence[Buffer]) -> int:
        if "/data/" in name:
            self.writing.set()
            await self.release.wait()
        return await super().write(name, offset, data)


async def test_a_cancelled_pack_write_is_a_storage_error_for_every_member() -> None:
    chunks = StalledChunks()
    storage = await opened(chunks)
    names = await created(storage, 3)
    writes = [asyncio.ensure_future(storage.write(name, 0, b"first")) for name in names]
    await asyncio.wait_for(chunks.writing.wait(), 10)
    (pack_write,) = storage._pack_writes
    pack_write.cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 10)
    assert all(isinstance(outcome, StorageError) for outcome in outcomes), outcomes
    chunks.release.set()
    await asyncio.gather(*(storage.write(name, 0, b"again") for name in names))
    assert [await storage.read(name, 0, 10) for name in names] == [b"again"] * 3


async def test_a_full_pack_is_closed_and_the_next_members_start_another() -> None:
    chunks = InMemoryChunkStorage()
    storage = await opened(chunks, max_chunk_size=1000)
    names = names_of(40)
    await write_firsts(storage, names)
    lengths = sorted([await chunks.length(name) for name in await data_chunks(chunks)])
    assert len(lengths) == 2 and max(lengths) <= 1000 and sum(lengths) == sum(10 + i for i in range(40))
    for i, name in enumerate(names):
        assert await storage.read(name, 0, 100) == pattern(10 + i, i)


async def test_unreferenced_data_chunks_are_deleted_on_open() -> None:
    chunks = InMemoryChunkStorage()
    storage = await opened(chunks)
    await storage.create(SEGMENT)
    await storage.write(SEGMENT, 0, b"kept")
    (kept,) = await data_chunks(chunks)
    await chunks.create(kept.rpartition("/")[0] + "/orphan-from-a-crash")
    foreign = "ns-other~0000000000000000/data/belongs-to-another-namespace"
    await chunks.create(foreign)
    storage = await opened(chunks)
    assert await data_chunks(chunks) == sorted([kept, foreign])
    assert await storage.read(SEGMENT, 0, 10) == b"kept"


async def test_namespaces_are_isolated() -> None:
    chunks = InMemoryChunkStorage()
    first = ChunkedSegmentStorage(chunks, namespace="container-1")
    second = ChunkedSegmentStorage(chunks, namespace="container-10")
    await first.open()
    await second.open()
    await first.create(SEGMENT)
    await first.write(SEGMENT, 0, b"one")
    assert not await second.exists(SEGMENT)
    second = ChunkedSegmentStorage(chunks, namespace="container-10")
    await second.open()
    first = ChunkedSegmentStorage(chunks, namespace="container-1")
    await first.open()
    assert await first.read(SEGMENT, 0, 3) == b"one"


async def test_long_and_odd_segment_names_map_to_safe_chunk_names(tmp_path: Path) -> None:
    chunks = FileSystemChunkStorage(tmp_path)
    storage = await opened(chunks)
    name = "_system/_tables/" + "x" * 300 + "#transaction.1/../../etc"
    await storage.create(name)
    await storage.write(name, 0, b"safe")
    (chunk,) = await data_chunks(chunks)
    assert len(chunk.rpartition("/")[2]) < 128
    assert await (await opened(chunks)).read(name, 0, 4) == b"safe"


async def test_torn_journal_tail_is_dropped() -> None:
    chunks = InMemoryChunkStorage()
    storage = await opened(chunks)
    await storage.create(SEGMENT)
    await storage.write(SEGMENT, 0, b"acked")
    journal = max(name for name in await meta_chunks(chunks) if "journal-" in name)
    await chunks.write(journal, await chunks.length(journal), b"ABMJ\x00\x00\x00\x30torn")
    storage = await opened(chunks)
    assert await storage.read(SEGMENT, 0, 10) == b"acked"


async def test_corrupt_record_in_an_earlier_journal_chunk_is_data_corruption() -> None:
    chunks = InMemoryChunkStorage(supports_append=False)
    storage = await opened(chunks)
    await storage.create(SEGMENT)
    await storage.write(SEGMENT, 0, b"one")
    await storage.write(SEGMENT, 3, b"two")
    first = min(name for name in await meta_chunks(chunks) if "journal-" in name)
    corrupted = bytearray(await chunks.read(first, 0, 10_000))
    corrupted[-1] ^= 0xFF
    await chunks.delete(first)
    await chunks.create(first)
    await chunks.write(first, 0, corrupted)
    with pytest.raises(DataCorruptionError):
        await opened(chunks)


async def test_torn_newest_snapshot_falls_back_to_the_previous_generation() -> None:
    chunks = InMemoryChunkStorage()
    storage = await opened(chunks)
    await storage.create(SEGMENT)
    await storage.write(SEGMENT, 0, b"acked")
    await chunks.create("ns-" + storage_root_suffix(storage) + "meta/snapshot-000000000000-999999999999")
    storage = await opened(chunks)
    assert await storage.read(SEGMENT, 0, 10) == b"acked"
    assert len([name for name in await meta_chunks(chunks) if "snapshot-" in name]) == 1


def storage_root_suffix(storage: ChunkedSegmentStorage) -> str:
    return storage._root.removeprefix("ns-")


async def test_snapshots_bound_the_metadata_chunks() -> None:
    chunks = InMemoryChunkStorage(supports_append=False)
    storage = await opened(chunks, snapshot_every=10)
    await storage.create(SEGMENT)
    for offset in range(0, 1000, 10):
        await storage.write(SEGMENT, offset, pattern(10, offset))
    names = await meta_chunks(chunks)
    generations = {re.search(r"(?:snapshot|journal)-\d{12}-(\d{12})", name).group(1) for name in names}  # type: ignore[union-attr]
    assert len(generations) == 1, names  # older generations are deleted once a newer snapshot is durable
    # 101 records were written, each its own chunk (no appends); a generation rolls once its journal holds as many
    # bytes as its snapshot (here about half the records), so far fewer chunks remain.
    assert len(names) < 60, names
    storage = await opened(chunks)
    assert await storage.read(SEGMENT, 0, 1000) == b"".join(pattern(10, o) for o in range(0, 1000, 10))


async def test_a_fenced_out_owner_cannot_change_what_the_new_owner_sees() -> None:
    chunks = InMemoryChunkStorage()
    zombie = ChunkedSegmentStorage(chunks, namespace="c", epoch=1, snapshot_every=2)
    await zombie.open()
    await zombie.create(SEGMENT)
    await zombie.write(SEGMENT, 0, b"before")
    owner = ChunkedSegmentStorage(chunks, namespace="c", epoch=2)
    await owner.open()
    for offset in range(6, 60, 6):
        await zombie.write(SEGMENT, offset, b"zombie")
    await zombie.create("zombie/segment")
    await owner.write(SEGMENT, 6, b"+owner")
    owner = ChunkedSegmentStorage(chunks, namespace="c", epoch=2)
    await owner.open()
    assert await owner.read(SEGMENT, 0, 100) == b"before+owner"
    assert not await owner.exists("zombie/segment")
    with pytest.raises(StorageFencedError):
        await ChunkedSegmentStorage(chunks, namespace="c", epoch=1).open()


class FailingChunks(InMemoryChunkStorage):
    """Chunk storage whose writes fail once ``failing`` is set (a disk or network failure)."""

    failing = False
    failing_data = False

    async def write(self, name: str, offset: int, data: Buffer) -> int:
        if (self.failing and "/meta/" in name) or (self.failing_data and "/data/" in name):
            raise StorageError("injected LTS write failure")
        return await super().write(name, offset, data)


async def test_failed_journal_write_stops_the_instance_and_a_new_one_recovers() -> None:
    chunks = FailingChunks()
    storage = await opened(chunks)
    await storage.create(SEGMENT)
    await storage.write(SEGMENT, 0, b"acked")
    chunks.failing = True
    with pytest.raises(MetadataJournalFailedError):
        await storage.write(SEGMENT, 5, b"lost")
    chunks.failing = False
    with pytest.raises(MetadataJournalFailedError):
        await storage.seal(SEGMENT)
    storage = await opened(chunks)
    assert await storage.get_info(SEGMENT) == StorageSegmentInfo(SEGMENT, 5, 0, False)
    await storage.write(SEGMENT, 5, b"+more")
    assert await storage.read(SEGMENT, 0, 20) == b"acked+more"


async def test_concurrent_commits_are_grouped() -> None:
    chunks = InMemoryChunkStorage(supports_append=False)
    storage = await opened(chunks, snapshot_every=1_000_000)
    before = len(await meta_chunks(chunks))
    await asyncio.gather(*(storage.create(f"s/t/{i}") for i in range(50)))
    assert len(await meta_chunks(chunks)) - before < 50


CRASH_SCRIPT = """
import asyncio, sys
from pathlib import Path
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_fs import FileSystemChunkStorage

async def writer(storage, index):
    name = "scope/stream/%d.#epoch.0" % index
    await storage.create(name)
    offset = 0
    while True:
        size = 1 + (offset * 7919) % 3000
        await storage.write(name, offset, bytes([index]) * size)
        offset += size
        sys.stdout.write("%d %d\\n" % (index, offset))
        sys.stdout.flush()

async def main():
    storage = ChunkedSegmentStorage(FileSystemChunkStorage(Path(sys.argv[1])), max_chunk_size=20000,
                                    snapshot_every=20)
    await storage.open()
    await asyncio.gather(*(writer(storage, i) for i in range(4)))

asyncio.run(main())
"""


@pytest.mark.timeout(60)
async def test_kill_9_keeps_every_acked_lts_write(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    acked: dict[int, int] = {}
    lines = 0
    try:
        while lines < 600:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, "the LTS writer process died early"
            index, length = map(int, line.split())
            acked[index] = length
            lines += 1
    finally:
        process.kill()
        await asyncio.wait_for(process.wait(), 30)
    storage = ChunkedSegmentStorage(FileSystemChunkStorage(tmp_path), max_chunk_size=20000)
    await storage.open()
    for index, length in acked.items():
        name = f"scope/stream/{index}.#epoch.0"
        info = await storage.get_info(name)
        assert info.length >= length
        assert await storage.read(name, 0, info.length) == bytes([index]) * info.length
        await storage.write(name, info.length, b"after crash")


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
async def test_pieces_are_written_without_joining_across_chunk_boundaries(backend: str, tmp_path: Path) -> None:
    chunks: ChunkStorage = InMemoryChunkStorage() if backend == "memory" else FileSystemChunkStorage(tmp_path)
    storage = ChunkedSegmentStorage(chunks, max_chunk_size=100)
    await storage.open()
    await storage.create("seg")
    pieces = [bytes([i]) * size for i, size in enumerate([30, 90, 1, 79, 45])]
    await storage.write("seg", 0, pieces)
    await storage.write("seg", 245, [memoryview(b"x" * 60), bytearray(b"y" * 10)])
    expected = b"".join(pieces) + b"x" * 60 + b"y" * 10
    assert await storage.read("seg", 0, len(expected)) == expected
    assert (await storage.get_info("seg")).length == len(expected) == 315
