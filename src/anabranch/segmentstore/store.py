"""The segment store: routes every segment name to the container that owns it.

``container_id_for(name, count)`` is stable across processes and hosts (murmur3 of the parent
stream segment's name, so a transaction or transient segment lives in its parent's container and
merges stay inside one container). A ``SegmentStore`` runs some of the ``container_count``
containers: all of them standalone, a changing subset in a cluster (the container monitor adds and
removes them); a request for a segment whose container does not run here raises
``ContainerNotOwnedError`` (the wire server answers ``WrongHost``). ``open_segment_store`` builds and
recovers all containers over file Tier-1 logs (``data_dir/tier1/<id>/``) and filesystem LTS
(``data_dir/lts/``), or over in-memory storage when ``durable`` is False.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import mmh3

from anabranch.admin.metrics import SEGMENT_STORE as SEGMENT_STORE_METRICS
from anabranch.clock import Clock
from anabranch.errors import ConfigError
from anabranch.model.names import parent_segment_name
from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.errors import (
    ContainerNotOwnedError,
    NoSuchSegmentError,
    SegmentSealedError,
    SegmentTruncatedError,
)
from anabranch.segmentstore.health import ContainerHealth, QuarantineLog, StoreHealth
from anabranch.segmentstore.heap import PROCESS_HEAP
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


ContainerListener = Callable[[int, bool], None]
"""Called with (container id, running) after a container was added to or removed from a store."""


class SegmentStore:
    """The running containers of this process, out of ``container_count`` (default: ``len(containers)``, which
    must then be containers 0..n-1)."""

    def __init__(self, containers: list[SegmentContainer], *, container_count: int | None = None) -> None:
        if container_count is None:
            if not containers:
                raise ConfigError("a segment store needs at least one container")
            container_count = len(containers)
        if container_count <= 0:
            raise ConfigError(f"container_count must be positive, got {container_count}")
        self.container_count = container_count
        self._running: dict[int, SegmentContainer] = {}
        self._listeners: list[ContainerListener] = []
        self.quarantine = QuarantineLog()
        """Table records that failed to decode and were skipped (reported by the table store)."""
        for container in containers:
            self.add_container(container)

    @property
    def containers(self) -> list[SegmentContainer]:
        """The running containers, by id."""
        return [self._running[i] for i in sorted(self._running)]

    def container_ids(self) -> list[int]:
        return sorted(self._running)

    def running(self, container_id: int) -> SegmentContainer | None:
        return self._running.get(container_id)

    def add_listener(self, listener: ContainerListener) -> None:
        self._listeners.append(listener)

    def add_container(self, container: SegmentContainer) -> None:
        """Serve ``container`` (already started) from now on."""
        cid = container.container_id
        if not 0 <= cid < self.container_count:
            raise ConfigError(f"container {cid} is outside 0..{self.container_count - 1}")
        if cid in self._running:
            raise ConfigError(f"container {cid} already runs in this segment store")
        self._running[cid] = container
        self._notify(cid, True)

    def remove_container(self, container_id: int) -> SegmentContainer | None:
        """Stop routing requests to the container (the caller closes it); None if it was not running."""
        container = self._running.pop(container_id, None)
        if container is not None:
            self._notify(container_id, False)
        return container

    def _notify(self, container_id: int, running: bool) -> None:
        for listener in self._listeners:
            listener(container_id, running)

    def container_id(self, name: str) -> int:
        return container_id_for(name, self.container_count)

    def container(self, name: str) -> SegmentContainer:
        container_id = container_id_for(name, self.container_count)
        container = self._running.get(container_id)
        if container is None:
            raise ContainerNotOwnedError(name, container_id)
        return container

    async def start(self) -> None:
        """Recover every container (in parallel), then give the heap recovery freed back to the OS."""
        await asyncio.gather(*(c.start() for c in self.containers))
        PROCESS_HEAP.trim()

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
        container = self.container(name)
        started = time.perf_counter()
        result = await container.append(name, data, writer_id=writer_id, event_number=event_number,
                                        event_count=event_count, expected_offset=expected_offset)
        SEGMENT_STORE_METRICS.appended(container.container_id, name, len(data), time.perf_counter() - started)
        return result

    async def get_writer_event_number(self, name: str, writer_id: uuid.UUID) -> int:
        return await self.container(name).get_writer_event_number(name, writer_id)

    async def read(self, name: str, offset: int, max_length: int, *,
                   wait_timeout: float | None = None, keep_in_cache: bool = True) -> ReadResult:
        container = self.container(name)
        started = time.perf_counter()
        result = await container.read(name, offset, max_length, wait_timeout=wait_timeout, keep_in_cache=keep_in_cache)
        SEGMENT_STORE_METRICS.read(container.container_id, name, result.size, time.perf_counter() - started)
        return result

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

    def health(self, expected: list[int] | None = None) -> StoreHealth:
        """Each container's state (running / disk_full / failed with the reason) and quarantined records.
        ``expected`` lists the containers this store should run (default: the running ones); one that does
        not run counts as failed."""
        states = {c.container_id: c.health() for c in self.containers}
        for container_id in expected or []:
            states.setdefault(container_id, ContainerHealth(container_id, "failed", "not running here"))
        return StoreHealth(tuple(states[i] for i in sorted(states)), self.quarantine.snapshot())

    def statistics(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for container in self.containers:
            for key, value in container.statistics().items():
                total[key] = total.get(key, 0) + value
        total["containers"] = len(self._running)
        return total


async def open_segment_store(data_dir: Path, container_count: int = 4, *, cache_size: int = 256 * MIB,
                             durable: bool = True, lts: ChunkStorage | None = None,
                             clock: Clock | None = None) -> SegmentStore:
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
        containers.append(SegmentContainer(container_id, tier1, storage, cache_size=cache_size // container_count,
                                           clock=clock))
    store = SegmentStore(containers)
    await store.start()
    return store
