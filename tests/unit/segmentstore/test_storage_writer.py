"""Storage writer races: a merge applied while the source's bytes are being written to LTS, and
Tier-1 truncation only below data that is in LTS; a segment is created in LTS only once it has something to put
there."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.metadata import lts_name_of
from anabranch.segmentstore.storage_writer import StorageWriterConfig
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.file_log import FileDurableDataLog
from anabranch.storage.interfaces import Buffer

TARGET = "s/t/0.#epoch.0"
SOURCE = TARGET + "#transaction." + "5" * 32


class GatedStorage(ChunkedSegmentStorage):
    """LTS whose writes to one segment wait for the test."""

    def __init__(self, chunks: InMemoryChunkStorage) -> None:
        super().__init__(chunks, max_chunk_size=1024)
        self.gated_prefix = ""
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def write(self, segment: str, offset: int, data: Buffer | Sequence[Buffer]) -> None:
        if self.gated_prefix and segment.startswith(self.gated_prefix):
            self.waiting.set()
            await self.gate.wait()
        await super().write(segment, offset, data)


async def open_container(root: Path, chunks: InMemoryChunkStorage) -> tuple[SegmentContainer, GatedStorage]:
    storage = GatedStorage(chunks)
    await storage.open()
    config = StorageWriterConfig(flush_interval=3600.0, flush_threshold=1 << 30)
    container = SegmentContainer(0, FileDurableDataLog(root, file_size_limit=2048), storage, writer_config=config)
    await container.start()
    return container, storage


async def read_all(container: SegmentContainer, name: str) -> bytes:
    info = await container.get_info(name)
    out = bytearray()
    while len(out) < info.length:
        out += (await container.read(name, len(out), 1 << 20)).data
    return bytes(out)


async def test_merge_while_source_is_being_flushed(tmp_path: Path) -> None:
    chunks = InMemoryChunkStorage()
    container, storage = await open_container(tmp_path, chunks)
    await container.create_segment(TARGET)
    await container.create_segment(SOURCE)
    await container.append(TARGET, b"T" * 100)
    await container.append(SOURCE, b"a" * 300)
    await container.flush_to_storage()
    await container.append(SOURCE, b"b" * 300)
    storage.gated_prefix = SOURCE
    storage.gate.clear()
    storage.waiting.clear()
    flushing = asyncio.create_task(container.flush_to_storage())
    await asyncio.wait_for(storage.waiting.wait(), 5)
    assert await container.merge(TARGET, SOURCE) == 700
    await container.append(TARGET, b"c" * 50)
    storage.gate.set()
    await asyncio.wait_for(flushing, 5)
    expected = b"T" * 100 + b"a" * 300 + b"b" * 300 + b"c" * 50
    assert await read_all(container, TARGET) == expected
    await container.flush_to_storage()
    meta = container.metadata.by_name[TARGET]
    assert meta.storage_length == 750 and meta.pending_merges == ()
    assert await storage.read(meta.lts_name, 0, 750) == expected
    assert container.read_index.unflushed_bytes == 0
    await container.abort()
    container, storage = await open_container(tmp_path, chunks)
    assert await read_all(container, TARGET) == expected
    assert container.segment_names() == [TARGET]
    await container.close()


async def test_tier1_is_truncated_only_below_flushed_data(tmp_path: Path) -> None:
    chunks = InMemoryChunkStorage()
    container, storage = await open_container(tmp_path, chunks)
    other = "s/u/0.#epoch.0"
    await container.create_segment(TARGET)
    await container.create_segment(other)
    for _ in range(20):
        await container.append(TARGET, b"x" * 200)
    await container.append(other, b"pending")
    storage.gated_prefix = other
    storage.gate.clear()
    storage.waiting.clear()
    flushing = asyncio.create_task(container.flush_to_storage())
    await asyncio.wait_for(storage.waiting.wait(), 5)
    await container.abort()
    flushing.cancel()
    storage.gate.set()
    container, storage = await open_container(tmp_path, chunks)
    assert await read_all(container, other) == b"pending"
    assert await read_all(container, TARGET) == b"x" * 4000
    await container.flush_to_storage()
    truncated = container.statistics()["tier1_truncated_upto"]
    assert truncated > 0
    await container.abort()
    container, _ = await open_container(tmp_path, chunks)
    assert await read_all(container, other) == b"pending"
    assert await read_all(container, TARGET) == b"x" * 4000
    await container.close()


async def test_merge_of_empty_source_at_the_end_then_seal(tmp_path: Path) -> None:
    chunks = InMemoryChunkStorage()
    container, storage = await open_container(tmp_path, chunks)
    await container.create_segment(TARGET)
    await container.create_segment(SOURCE)
    await container.append(TARGET, b"abc")
    await container.flush_to_storage()
    assert await container.merge(TARGET, SOURCE) == 3
    await container.seal(TARGET)
    await container.flush_to_storage()
    meta = container.metadata.by_name[TARGET]
    assert meta.pending_merges == () and meta.storage_sealed and not meta.unflushed
    assert not await storage.exists(lts_name_of(SOURCE, 2))
    await container.close()


async def test_lts_write_completed_but_unrecorded_is_adopted(tmp_path: Path) -> None:
    chunks = InMemoryChunkStorage()
    container, storage = await open_container(tmp_path, chunks)
    await container.create_segment(TARGET)
    await container.append(TARGET, b"abc")
    await container.flush_to_storage()
    await container.append(TARGET, b"defg")
    meta = container.metadata.by_name[TARGET]
    await storage.write(meta.lts_name, 3, [b"de"])
    await container.flush_to_storage()
    assert meta.storage_length == 7 and container.read_index.unflushed_bytes == 0
    assert await storage.read(meta.lts_name, 0, 7) == b"abcdefg"
    await container.close()


async def test_a_segment_enters_lts_only_with_its_first_bytes_or_its_seal(tmp_path: Path) -> None:
    chunks = InMemoryChunkStorage()
    container, storage = await open_container(tmp_path, chunks)
    empty, written, sealed = "s/t/1.#epoch.0", "s/t/2.#epoch.0", "s/t/3.#epoch.0"
    for name in (empty, written, sealed):
        await container.create_segment(name)
    await container.append(written, b"bytes")
    await container.seal(sealed)
    await container.flush_to_storage()
    lts = {name: lts_name_of(name, container.metadata.by_name[name].segment_id) for name in (empty, written, sealed)}
    assert not await storage.exists(lts[empty])
    assert (await storage.get_info(lts[written])).length == 5
    assert (await storage.get_info(lts[sealed])).sealed
    await container.append(empty, b"late")
    await container.flush_to_storage()
    assert (await storage.get_info(lts[empty])).length == 4
    await container.close()
    reopened, _ = await open_container(tmp_path, chunks)
    assert await read_all(reopened, empty) == b"late"
    assert await read_all(reopened, written) == b"bytes"
    assert (await reopened.get_info(sealed)).sealed
    await reopened.close()
