"""The segment store: routes every segment name to the container that owns it.

``container_id_for(name, count)`` is stable across processes and hosts (murmur3 of the parent
stream segment's name, so a transaction or transient segment lives in its parent's container and
merges stay inside one container). ``open_segment_store`` builds and recovers the containers over
file Tier-1 logs (``data_dir/tier1/<id>/``) and filesystem LTS (``data_dir/lts/``), or over
in-memory storage when ``durable`` is False.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import mmh3

from anabranch.errors import ConfigError
from anabranch.model.names import parent_segment_name
from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.errors import NoSuchSegmentError, SegmentSealedError, SegmentTruncatedError
from anabranch.segmentstore.results import AppendResult, ReadResult, SegmentInfo
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_fs import FileSystemChunkStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.file_log import FileDurableDataLog
from anabranch.storage.interfaces import Buffer, ChunkStorage, DurableDataLog
from anabranch.storage.memory_log import InMemoryDurableDataLog

log = logging.getLogger(__name__)

MIB = 1024 * 1024


def container_id_for(name: str, container_count: int) -> int:
    """The container owning segment ``name`` (transaction/transient segments go with their parent)."""
    return mmh3.hash(parent_segment_name(name).encode(), signed=False) % container_count


class SegmentStore:
    def __init__(self, containers: list[SegmentContainer]) -> None:
        if not containers:
            raise ConfigError("a segment store needs at least one container")
        self.containers = containers

    def container(self, name: str) -> SegmentContainer:
        return self.containers[container_id_for(name, len(self.containers))]

    async def start(self) -> None:
        """Recover every container (in parallel)."""
        await asyncio.gather(*(c.start() for c in self.containers))

    async def close(self) -> None:
        """Flush pending work to LTS and close every container."""
        await asyncio.gather(*(c.close() for c in self.containers))

    async def __aenter__(self) -> SegmentStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def abort(self) -> None:
        """Stop every container without flushing (what a crash leaves behind; for tests)."""
        await asyncio.gather(*(c.abort() for c in self.containers))

    async def flush_to_storage(self) -> None:
        """Move every durable byte to LTS now, checkpoint and truncate Tier-1 (tests, admin)."""
        await asyncio.gather(*(c.flush_to_storage() for c in self.containers))

    async def create_segment(self, name: str, *, scale_type: int = 0, target_rate: int = 0, rollover_size: int = 0,
                             is_table: bool = False) -> None:
        await self.container(name).create_segment(name, scale_type=scale_type, target_rate=target_rate,
                                                  rollover_size=rollover_size, is_table=is_table)

    async def append(self, name: str, data: Buffer, *, writer_id: uuid.UUID | None = None,
                     event_number: int | None = None, event_count: int = 1,
                     expected_offset: int | None = None) -> AppendResult:
        return await self.container(name).append(name, data, writer_id=writer_id, event_number=event_number,
                                                 event_count=event_count, expected_offset=expected_offset)

    async def get_writer_event_number(self, name: str, writer_id: uuid.UUID) -> int:
        return await self.container(name).get_writer_event_number(name, writer_id)

    async def read(self, name: str, offset: int, max_length: int, *,
                   wait_timeout: float | None = None) -> ReadResult:
        return await self.container(name).read(name, offset, max_length, wait_timeout=wait_timeout)

    async def get_info(self, name: str) -> SegmentInfo:
        return await self.container(name).get_info(name)

    async def seal(self, name: str) -> int:
        return await self.container(name).seal(name)

    async def truncate(self, name: str, offset: int) -> None:
        await self.container(name).truncate(name, offset)

    async def delete(self, name: str) -> None:
        await self.container(name).delete(name)

    async def merge(self, target: str, source: str) -> int:
        container = self.container(target)
        if self.container(source) is not container:
            return await self._merge_across(target, source)
        return await container.merge(target, source)

    async def merge_batch(self, target: str, sources: list[str]) -> list[int]:
        """Merge ``sources`` into ``target`` in order, as one log operation when they share the target's
        container; missing sources (or the target itself) count as already merged."""
        container = self.container(target)
        if all(self.container(s) is container for s in sources):
            return await container.merge_batch(target, sources)
        for source in set(sources) - {target}:
            try:
                info = await self.get_info(source)
            except NoSuchSegmentError:
                continue
            if info.start_offset > 0:
                raise SegmentTruncatedError(source, info.start_offset)
        lengths = []
        for source in sources:
            if source == target:
                lengths.append((await self.get_info(target)).length)
            else:
                lengths.append(await self._merge_across(target, source, missing_ok=True))
        return lengths

    async def _merge_across(self, target: str, source: str, *, missing_ok: bool = False) -> int:
        """Merge a source living in another container (names whose parents hash apart): seal it, copy
        its bytes into the target in one append, delete it. Not atomic across a crash, unlike merges
        inside one container."""
        source_container = self.container(source)
        target_info = await self.get_info(target)
        if target_info.sealed:
            raise SegmentSealedError(target, target_info.length)
        try:
            info = await source_container.get_info(source)
        except NoSuchSegmentError:
            if missing_ok:
                return target_info.length
            raise
        if info.start_offset > 0:
            raise SegmentTruncatedError(source, info.start_offset)
        if not info.sealed:
            await source_container.seal(source)
            info = await source_container.get_info(source)
        chunks: list[bytes] = []
        offset = 0
        while offset < info.length:
            result = await source_container.read(source, offset, 8 * MIB)
            chunks.append(bytes(result.data))
            offset += len(result.data)
        new_length = (await self.append(target, b"".join(chunks))).new_length
        await source_container.delete(source)
        return new_length

    async def get_attribute(self, name: str, attribute_id: uuid.UUID) -> int:
        return await self.container(name).get_attribute(name, attribute_id)

    async def update_attributes(self, name: str, updates: list[tuple[uuid.UUID, int, int | None]]) -> bool:
        return await self.container(name).update_attributes(name, updates)

    async def update_policy(self, name: str, scale_type: int, target_rate: int) -> None:
        await self.container(name).update_policy(name, scale_type, target_rate)

    def segment_names(self, prefix: str = "") -> list[str]:
        return sorted(name for c in self.containers for name in c.segment_names(prefix))

    def statistics(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for container in self.containers:
            for key, value in container.statistics().items():
                total[key] = total.get(key, 0) + value
        total["containers"] = len(self.containers)
        return total


async def open_segment_store(data_dir: Path, container_count: int = 4, *, cache_size: int = 256 * MIB,
                             durable: bool = True, lts: ChunkStorage | None = None) -> SegmentStore:
    """Build the containers over file logs and filesystem LTS under ``data_dir`` (or in memory when
    ``durable`` is False), recover them, and return the running store. ``lts`` replaces the default chunk
    storage (e.g. an S3 bucket shared by several segment stores)."""
    if container_count <= 0:
        raise ConfigError(f"container_count must be positive, got {container_count}")
    chunks: ChunkStorage
    if lts is not None:
        chunks = lts
    else:
        chunks = FileSystemChunkStorage(Path(data_dir) / "lts") if durable else InMemoryChunkStorage()
    containers = []
    tier1: DurableDataLog
    for container_id in range(container_count):
        storage = ChunkedSegmentStorage(chunks, namespace=f"container-{container_id}")
        await storage.open()
        if durable:
            tier1 = FileDurableDataLog(Path(data_dir) / "tier1" / str(container_id))
        else:
            tier1 = InMemoryDurableDataLog()
        containers.append(SegmentContainer(container_id, tier1, storage, cache_size=cache_size // container_count))
    store = SegmentStore(containers)
    await store.start()
    return store
