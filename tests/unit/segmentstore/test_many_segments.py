"""Many idle segments: an idle segment all in LTS keeps no read-index entry, the storage writer flushes many
segments at once (their LTS metadata grouped), and a crash in the middle of such a flush loses nothing acked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cbor2
import pytest

from anabranch.clock import ManualClock
from anabranch.errors import DataCorruptionError
from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.errors import NoSuchSegmentError
from anabranch.segmentstore.metadata import ContainerMetadata, SegmentMetadata
from anabranch.segmentstore.storage_writer import StorageWriterConfig
from anabranch.segmentstore.store import SegmentStore
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.file_log import FileDurableDataLog
from anabranch.storage.interfaces import Buffer, StorageError

from .conftest import StoreEnv

SEGMENTS = 200
TIMEOUT = 30.0


def name(i: int) -> str:
    return f"sc/st{i}/0.#epoch.0"


def payload(i: int) -> bytes:
    return f"segment {i};".encode() * 3


async def read_all(store: SegmentStore, segment: str) -> bytes:
    info = await store.get_info(segment)
    data = b""
    while len(data) < info.length:
        result = await store.read(segment, len(data), info.length - len(data))
        data += b"".join(bytes(p) for p in result.pieces)
    return data


async def test_idle_flushed_segments_keep_no_read_index_and_read_from_lts(env: StoreEnv) -> None:
    store = await env.open()
    await asyncio.gather(*(store.create_segment(name(i)) for i in range(SEGMENTS)))
    await asyncio.gather(*(store.append(name(i), payload(i)) for i in range(SEGMENTS)))
    await store.flush_to_storage()
    for container in store.containers:
        assert container.read_index.segments, "appended bytes are kept in memory until the segment is idle"
        container.release_idle_segments(0.0)
        assert container.read_index.segments == {} and container.read_index.memory_bytes == 0
    await store.flush_to_storage()
    assert all(not c.metadata.dirty for c in store.containers), "flushed segments leave the writer's dirty set"
    for i in range(SEGMENTS):
        assert await read_all(store, name(i)) == payload(i)
    tail = asyncio.ensure_future(store.read(name(0), len(payload(0)), 100, wait_timeout=TIMEOUT))
    container = store.container(name(0))
    segment_id = container.metadata.by_name[name(0)].segment_id
    for _ in range(1000):
        if segment_id in container.read_index.segments:
            break
        await asyncio.sleep(0)
    container.release_idle_segments(0.0)
    assert container.read_index.segments[segment_id].waiters
    await store.append(name(0), b"more")
    result = await asyncio.wait_for(tail, TIMEOUT)
    assert b"".join(bytes(p) for p in result.pieces) == b"more", "a waiting tail reader keeps its entry"
    store = await env.restart(crash=True)
    for i in range(SEGMENTS):
        assert await read_all(store, name(i)) == payload(i) + (b"more" if i == 0 else b"")


class MetadataStall(InMemoryChunkStorage):
    """In-memory chunks whose LTS metadata writes hang once ``stall`` is set and a data chunk was written: a crash
    then hits a flush after its data chunks are written and before the metadata that references them."""

    def __init__(self) -> None:
        super().__init__()
        self.stall = False
        self.stalled = asyncio.Event()
        self.crashed = asyncio.Event()
        self.data_writes = 0

    async def write(self, name: str, offset: int, data: Buffer) -> int:
        if self.stall and "/meta/" in name and self.data_writes:
            self.stalled.set()
            await self.crashed.wait()
            raise StorageError("the process died before this metadata write")
        if "/data/" in name:
            self.data_writes += 1
        return await super().write(name, offset, data)


async def open_container(root: Path, chunks: InMemoryChunkStorage) -> SegmentContainer:
    storage = ChunkedSegmentStorage(chunks, namespace="container-0")
    await storage.open()
    config = StorageWriterConfig(flush_interval=3600.0, flush_threshold=1 << 30, concurrent_flushes=16)
    container = SegmentContainer(0, FileDurableDataLog(root / "tier1"), storage, writer_config=config)
    await container.start()
    return container


async def test_the_writer_looks_for_idle_segments_once_per_scan_interval(tmp_path: Path) -> None:
    clock = ManualClock()
    storage = ChunkedSegmentStorage(InMemoryChunkStorage(), namespace="container-0")
    await storage.open()
    config = StorageWriterConfig(flush_interval=3600, release_idle_after=0.0, release_scan_interval=5.0)
    container = SegmentContainer(0, FileDurableDataLog(tmp_path / "tier1"), storage, writer_config=config,
                                 clock=clock)
    await container.start()
    try:
        ids = []
        for i in range(3):
            await container.create_segment(name(i))
            await container.append(name(i), payload(i))
            ids.append(container.metadata.by_name[name(i)].segment_id)
            await container.flush_to_storage()
            if i == 1:
                clock.advance(4.9)
        assert ids[0] not in container.read_index.segments  # the first cycle looked
        assert ids[1] in container.read_index.segments and ids[2] in container.read_index.segments  # not yet
        clock.advance(0.1)
        await container.flush_to_storage()
        assert not set(ids) & set(container.read_index.segments)  # 5 s after the first look
    finally:
        await container.close()


async def test_a_crash_between_grouped_chunk_writes_and_their_metadata_loses_nothing(tmp_path: Path) -> None:
    chunks = MetadataStall()
    container = await open_container(tmp_path, chunks)
    await asyncio.gather(*(container.create_segment(name(i)) for i in range(SEGMENTS)))
    await asyncio.gather(*(container.append(name(i), payload(i)) for i in range(SEGMENTS)))
    chunks.stall = True
    flush = asyncio.ensure_future(container.flush_to_storage())
    await asyncio.wait_for(chunks.stalled.wait(), TIMEOUT)
    assert chunks.data_writes > 0, "the crash comes after data chunks were written"
    chunks.crashed.set()
    await container.abort()
    await asyncio.gather(flush, return_exceptions=True)
    chunks.stall = False
    container = await open_container(tmp_path, chunks)
    try:
        for i in range(SEGMENTS):
            info = await container.get_info(name(i))
            assert info.length == len(payload(i))
            result = await container.read(name(i), 0, info.length)
            assert b"".join(bytes(p) for p in result.pieces) == payload(i)
        await container.flush_to_storage()
        for i in range(SEGMENTS):
            meta = container.metadata.by_name[name(i)]
            assert meta.storage_length == meta.length == len(payload(i))
    finally:
        await container.close()


async def test_queued_deletes_and_creates_of_one_name_keep_the_staged_view(store: SegmentStore) -> None:
    """The staged view is an overlay of queued creates and deletes: it must hide a deleted incarnation until every
    queued operation on the name is applied (found by the wire fuzzer: a second delete of one segment got queued)."""
    await store.create_segment(name(0))
    await asyncio.gather(store.delete(name(0)), store.create_segment(name(0)), store.delete(name(0)),
                         store.create_segment(name(0)))
    await store.append(name(0), b"last incarnation")
    await store.delete(name(0))
    with pytest.raises(NoSuchSegmentError):
        await store.delete(name(0))
    assert all(not c.failed for c in store.containers)
    assert store.container(name(0)).metadata.staged_by_name.get(name(0)) is None


def test_the_staged_overlay_hides_a_name_until_its_last_queued_operation_is_applied() -> None:
    metadata = ContainerMetadata(0)
    first = SegmentMetadata(1, "x", 0)
    metadata.add(first)
    second = SegmentMetadata(2, "x", 0)
    del metadata.staged_by_name["x"]
    metadata.staged_by_name["x"] = second
    del metadata.staged_by_name["x"]
    metadata.remove(first)
    assert metadata.staged_by_name.get("x") is None, "the delete of the second incarnation is still queued"
    metadata.add(second)
    assert metadata.staged_by_name.get("x") is None and "x" not in metadata.staged_by_name
    metadata.remove(second)
    assert metadata.staged_by_name.get("x") is None
    metadata.add(SegmentMetadata(3, "x", 0))
    assert metadata.staged_by_name.get("x") is metadata.by_name["x"], "no queued operation left: the committed view"


def _checkpointed() -> ContainerMetadata:
    metadata = ContainerMetadata(3, next_segment_id=40)
    for i in range(30):
        metadata.add(SegmentMetadata(i, f"s/t/{i}.#epoch.0", 1000 + i, length=i * 7, storage_length=i,
                                     is_table=i % 2 == 0, sealed=i % 3 == 0))
    metadata.lts_deletes.append("ns-3/data/gone")
    return metadata


def _rows_of(metadata: ContainerMetadata) -> list[tuple[object, ...]]:
    return [(m.segment_id, m.name, m.created_ms, m.length, m.storage_length, m.is_table, m.sealed)
            for m in metadata.segments.values()]


def test_a_checkpoint_round_trips_row_by_row() -> None:
    original = _checkpointed()
    loaded = ContainerMetadata.deserialize(bytes(original.serialize()))
    assert (loaded.container_id, loaded.next_segment_id, loaded.lts_deletes) == (3, 40, ["ns-3/data/gone"])
    assert _rows_of(loaded) == _rows_of(original)


def test_a_checkpoint_with_a_definite_length_row_array_loads_too() -> None:
    original = _checkpointed()
    data = bytes(original.serialize())
    rows = cbor2.loads(data)[3]  # the whole document, rows as one list
    definite = cbor2.dumps([1, 3, 40, rows, ["ns-3/data/gone"]])
    assert definite != data
    assert _rows_of(ContainerMetadata.deserialize(definite)) == _rows_of(original)


def test_a_truncated_checkpoint_is_data_corruption() -> None:
    data = bytes(_checkpointed().serialize())
    end_of_rows = data.rindex(b"\xff")
    for cut in (end_of_rows, end_of_rows - 5, 10):
        with pytest.raises(DataCorruptionError):
            ContainerMetadata.deserialize(data[:cut])


async def test_loading_a_table_index_from_lts_leaves_the_block_cache_alone(env: StoreEnv) -> None:
    from anabranch.protocol.commands import NO_VERSION
    from anabranch.segmentstore.tables import TableStore

    store = await env.open()
    tables = TableStore(store)
    table = "_system/_tables/streams/sc/st"
    await tables.create_table(table)
    versions = await tables.update(table, [(b"k%d" % i, b"v" * 200, NO_VERSION) for i in range(20)], -1)
    await store.flush_to_storage()
    container = store.container(table)
    container.release_idle_segments(0.0)
    assert container.cache.size == 0 and not container.read_index.segments
    tables.forget(table)  # the next request rebuilds the index from the segment, now only in LTS
    assert await tables.get(table, [b"k7"]) == [(versions[7], b"v" * 200)]
    assert container.cache.size == 0, "the bytes that built the index are not kept in the block cache as well"
    segment = "sc/st/0.#epoch.0"
    await store.create_segment(segment)
    await store.append(segment, b"data read again later")
    await store.flush_to_storage()
    store.container(segment).release_idle_segments(0.0)
    read = await store.read(segment, 0, 100)
    assert b"".join(bytes(p) for p in read.pieces) == b"data read again later"
    assert store.container(segment).cache.size > 0, "an ordinary read from LTS is cached"
