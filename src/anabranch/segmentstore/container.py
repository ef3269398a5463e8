"""A segment container: the segments of one hash bucket, with their durable log, read index and LTS.

Owns the public per-segment operations. Each modifying call validates against the STAGED metadata
(which already reflects queued operations), stages its effect, submits one operation to the
operation processor and returns once that operation is durable and applied. Reads and info use only
the COMMITTED metadata, so they never expose bytes or state that is not durable. Appends wait
(FIFO, so one writer's appends keep their order) while too many bytes are not yet in LTS.
Every operation is submitted (and so encoded) before its effect is staged, so a request whose fields
cannot be stored is refused (InvalidRequestError) with nothing staged. A full disk refuses the queued
operations and resets the staged view to the committed one (``health()`` says ``disk_full`` until a write
succeeds again); reads keep working.
Lifecycle: ``start`` recovers from Tier-1 + LTS, then starts the processor and the storage writer;
``close`` drains both; ``abort`` drops everything without flushing (a simulated crash).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable

from anabranch.clock import Clock, SystemClock
from anabranch.protocol.commands import NULL_ATTRIBUTE_VALUE
from anabranch.segmentstore.applier import OperationApplier
from anabranch.segmentstore.cache import BlockCache
from anabranch.segmentstore.durable_log import RECORDS_IN_FLIGHT, OperationProcessor
from anabranch.segmentstore.errors import (
    BadEventNumberError,
    BadOffsetError,
    InvalidOffsetError,
    NoSuchSegmentError,
    SegmentExistsError,
    SegmentSealedError,
    SegmentTruncatedError,
)
from anabranch.segmentstore.health import ContainerHealth
from anabranch.segmentstore.lts_reader import LtsReader
from anabranch.segmentstore.metadata import ContainerMetadata, SegmentMetadata
from anabranch.segmentstore.operations import (
    Append,
    CreateSegment,
    Delete,
    Merge,
    MergeSource,
    Operation,
    Seal,
    Truncate,
    UpdateAttributes,
    UpdatePolicy,
)
from anabranch.segmentstore.read_index import ReadIndex
from anabranch.segmentstore.recovery import recover
from anabranch.segmentstore.results import AppendResult, ReadResult, SegmentInfo
from anabranch.segmentstore.storage_writer import StorageWriter, StorageWriterConfig
from anabranch.storage.interfaces import Buffer, DurableDataLog, SegmentStorage

log = logging.getLogger(__name__)


class SegmentContainer:
    def __init__(self, container_id: int, durable_log: DurableDataLog, storage: SegmentStorage, *,
                 cache_size: int = 64 * 1024 * 1024, writer_config: StorageWriterConfig | None = None,
                 clock: Clock | None = None, on_failure: Callable[[int], None] | None = None,
                 records_in_flight: int = RECORDS_IN_FLIGHT) -> None:
        self.container_id = container_id
        self._on_failure = on_failure
        self._log = durable_log
        self._storage = storage
        self._cache_size = cache_size
        self._writer_config = writer_config
        self.metadata = ContainerMetadata(container_id)
        self.read_index = ReadIndex()
        self.cache = BlockCache(probation_bytes=cache_size // 32)  # blocks read only once: 1/32 of the budget
        self._clock = clock or SystemClock()
        self._applier = OperationApplier(self.metadata, self.read_index, self._clock)
        self._processor = OperationProcessor(container_id, durable_log, self._applier.apply,
                                             on_failure=self._on_log_failure, on_rejected=self._on_log_full,
                                             records_in_flight=records_in_flight)
        config = writer_config or StorageWriterConfig(max_unflushed_bytes=max(cache_size // 2, 1024 * 1024))
        self._writer = StorageWriter(container_id, self.metadata, self.read_index, storage, self._processor,
                                     durable_log, config, self._trim_memory, self._clock)
        self._lts = LtsReader(storage, self.cache)
        self._gate: deque[asyncio.Future[None]] = deque()
        self._stopped = False
        self._append_waits = 0
        self._inflight_bytes = 0
        self._events = 0
        self._admitting = 0

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._log.open()
        await recover(self.container_id, self._log, self._storage, self.metadata, self.read_index, self._applier)
        self._processor.start()
        self._writer.start()
        log.info("container %d started with %d segments", self.container_id, len(self.metadata.by_name))

    async def close(self) -> None:
        """Finish queued operations, flush everything to LTS, checkpoint, then close the log."""
        if self._stopped:
            return
        self._stopped = True
        await self._writer.close()
        await self._processor.close()
        await self._log.close()
        await self._storage.close()
        self._release_gate()
        self._wake_readers()

    def replacement(self) -> SegmentContainer:
        """A new, unstarted instance of this container over the same Tier-1 log and LTS with the same settings: what
        recovers it in this process after a failure (``anabranch.testing.faults``). Reopen ``storage``, then start."""
        return SegmentContainer(self.container_id, self._log, self._storage, cache_size=self._cache_size,
                                writer_config=self._writer_config, clock=self._clock, on_failure=self._on_failure)

    @property
    def durable_log(self) -> DurableDataLog:
        return self._log

    @property
    def storage(self) -> SegmentStorage:
        return self._storage

    def _on_log_failure(self) -> None:
        """The container can no longer make anything durable: fail waiting appends and tail reads."""
        self._release_gate()
        self._wake_readers()
        if self._on_failure is not None:
            self._on_failure(self.container_id)

    def _on_log_full(self) -> None:
        """The log had no space: every queued operation was refused, so the staged view is the committed one."""
        self.metadata.reset_staged()
        self._release_gate()

    def health(self) -> ContainerHealth:
        if self._processor.failed:
            return ContainerHealth(self.container_id, "failed", self._processor.failure)
        if self._stopped or self._processor.closing:
            return ContainerHealth(self.container_id, "failed", "stopped")
        if self._processor.disk_full is not None:
            return ContainerHealth(self.container_id, "disk_full", self._processor.disk_full)
        return ContainerHealth(self.container_id, "running")

    @property
    def failed(self) -> bool:
        """The durable log failed: this instance serves nothing more (a new one must recover the container)."""
        return self._processor.failed

    def _wake_readers(self) -> None:
        for index in self.read_index.segments.values():
            index.notify()

    async def abort(self) -> None:
        """Stop without flushing anything (what a crash leaves behind)."""
        if self._stopped:
            return
        self._stopped = True
        self._processor.abort()
        await self._writer.abort()
        self._release_gate()
        await self._log.close()
        await self._storage.close()
        self._wake_readers()

    async def flush_to_storage(self) -> None:
        """Move every durable byte and state change to LTS now, then checkpoint and truncate Tier-1."""
        await self._writer.flush_now()

    def release_idle_segments(self, idle_for: float) -> None:
        """Free the memory of segments not written for ``idle_for`` seconds whose bytes are all in LTS (the storage
        writer does this by itself for segments idle for ``release_idle_after``)."""
        self._writer.release_idle(idle_for)

    # --- modifying operations ------------------------------------------------------------------

    def _staged(self, name: str) -> SegmentMetadata:
        self._processor.check_open()
        meta = self.metadata.staged_by_name.get(name)
        if meta is None:
            raise NoSuchSegmentError(name)
        return meta

    async def _submit(self, op: Operation) -> int:
        return await self._processor.submit(op)

    async def create_segment(self, name: str, *, scale_type: int = 0, target_rate: int = 0, rollover_size: int = 0,
                             is_table: bool = False) -> None:
        self._processor.check_open()
        if name in self.metadata.staged_by_name:
            raise SegmentExistsError(name)
        segment_id = self.metadata.new_segment_id()
        created = int(self._clock.time() * 1000)
        meta = SegmentMetadata(segment_id, name, created, scale_type, target_rate, max(rollover_size, 0), is_table)
        queued = self._processor.submit(CreateSegment(segment_id, name, scale_type, target_rate,
                                                      max(rollover_size, 0), is_table, created))
        self.metadata.staged_by_name[name] = meta
        await queued

    async def append(self, name: str, data: Buffer, *, writer_id: uuid.UUID | None = None,
                     event_number: int | None = None, event_count: int = 1,
                     expected_offset: int | None = None) -> AppendResult:
        await self._admit()
        try:
            meta = self._staged(name)
            if meta.staged_sealed:
                raise SegmentSealedError(name, meta.staged_length)
            previous = NULL_ATTRIBUTE_VALUE
            if writer_id is not None:
                previous = meta.staged_attributes.get(writer_id, NULL_ATTRIBUTE_VALUE)
                if event_number is not None and previous >= event_number:
                    raise BadEventNumberError(name, writer_id, event_number, previous)
            if expected_offset is not None and expected_offset != meta.staged_length:
                raise BadOffsetError(name, meta.staged_length,
                                     f"conditional append to {name!r} expected offset {expected_offset}, "
                                     f"but the length is {meta.staged_length}")
            payload = _kept(data)
            offset = meta.staged_length
            tracked_writer = writer_id if event_number is not None else None
            future = self._processor.submit(Append(meta.segment_id, offset, payload, tracked_writer,
                                                   event_number or 0))
            size = len(payload)
            meta.staged_length += size
            if tracked_writer is not None and event_number is not None:
                meta.stage_attribute(tracked_writer, event_number)
            self._inflight_bytes += size
        finally:
            self._release_gate()
        self._writer.maybe_wake()
        try:
            await future
        finally:
            self._inflight_bytes -= size
            self._release_gate()
        self._events += event_count
        return AppendResult(offset + size, previous)

    async def seal(self, name: str) -> int:
        meta = self._staged(name)
        if meta.staged_sealed:
            raise SegmentSealedError(name, meta.staged_length)
        length = meta.staged_length
        queued = self._processor.submit(Seal(meta.segment_id, length))
        meta.staged_sealed = True
        await queued
        return length

    async def truncate(self, name: str, offset: int) -> None:
        meta = self._staged(name)
        if not meta.staged_start_offset <= offset <= meta.staged_length:
            raise BadOffsetError(name, meta.staged_start_offset,
                                 f"cannot truncate {name!r} at {offset}: it must be within "
                                 f"[{meta.staged_start_offset}, {meta.staged_length}]")
        queued = self._processor.submit(Truncate(meta.segment_id, offset))
        meta.staged_start_offset = offset
        await queued

    async def delete(self, name: str) -> None:
        meta = self._staged(name)
        queued = self._processor.submit(Delete(meta.segment_id))
        del self.metadata.staged_by_name[name]
        await queued

    async def merge(self, target: str, source: str) -> int:
        """Seal ``source`` and append all its bytes to ``target`` in one operation, then delete it.
        A truncated source cannot be merged (SegmentTruncatedError)."""
        target_meta = self._staged(target)
        source_meta = self.metadata.staged_by_name.get(source)
        if source_meta is None or source == target:
            raise NoSuchSegmentError(source)
        if target_meta.staged_sealed:
            raise SegmentSealedError(target, target_meta.staged_length)
        if source_meta.staged_start_offset > 0:
            raise SegmentTruncatedError(source, source_meta.staged_start_offset)
        return (await self._merge_staged(target_meta, [source_meta]))[0]

    async def merge_batch(self, target: str, sources: list[str]) -> list[int]:
        target_meta = self._staged(target)
        if target_meta.staged_sealed:
            raise SegmentSealedError(target, target_meta.staged_length)
        found: list[SegmentMetadata | None] = []
        for source in sources:
            meta = self.metadata.staged_by_name.get(source) if source != target else None
            if meta is not None and any(meta is other for other in found):
                meta = None
            if meta is not None and meta.staged_start_offset > 0:
                raise SegmentTruncatedError(source, meta.staged_start_offset)
            found.append(meta)
        return await self._merge_staged(target_meta, found)

    async def _merge_staged(self, target: SegmentMetadata, sources: list[SegmentMetadata | None]) -> list[int]:
        refs: list[MergeSource] = []
        lengths: list[int] = []
        length = target.staged_length
        for source in sources:
            if source is not None:
                refs.append(MergeSource(source.segment_id, length, source.staged_length))
                length += source.staged_length
            lengths.append(length)
        if not refs:
            return lengths
        queued = self._processor.submit(Merge(target.segment_id, tuple(refs)))
        target.staged_length = length
        for source in sources:
            if source is not None:
                source.staged_sealed = True
                del self.metadata.staged_by_name[source.name]
        await queued
        return lengths

    async def update_attributes(self, name: str, updates: list[tuple[uuid.UUID, int, int | None]]) -> bool:
        meta = self._staged(name)
        if meta.staged_sealed:
            raise SegmentSealedError(name, meta.staged_length)
        for key, _, expected in updates:
            if expected is not None and meta.staged_attributes.get(key, NULL_ATTRIBUTE_VALUE) != expected:
                return False
        queued = self._processor.submit(UpdateAttributes(meta.segment_id,
                                                         tuple((key, value) for key, value, _ in updates)))
        for key, value, _ in updates:
            meta.stage_attribute(key, None if value == NULL_ATTRIBUTE_VALUE else value)
        await queued
        return True

    async def update_policy(self, name: str, scale_type: int, target_rate: int) -> None:
        meta = self._staged(name)
        await self._submit(UpdatePolicy(meta.segment_id, scale_type, target_rate))

    # --- reads and info ------------------------------------------------------------------------

    def _committed(self, name: str) -> SegmentMetadata:
        self._processor.check_open()
        meta = self.metadata.by_name.get(name)
        if meta is None:
            raise NoSuchSegmentError(name)
        return meta

    async def get_writer_event_number(self, name: str, writer_id: uuid.UUID) -> int:
        return self._committed(name).attributes.get(writer_id, NULL_ATTRIBUTE_VALUE)

    async def get_attribute(self, name: str, attribute_id: uuid.UUID) -> int:
        return self._committed(name).attributes.get(attribute_id, NULL_ATTRIBUTE_VALUE)

    async def get_info(self, name: str) -> SegmentInfo:
        m = self._committed(name)
        return SegmentInfo(m.name, m.length, m.start_offset, m.sealed, m.deleted, m.last_modified_ms, m.scale_type,
                           m.target_rate, m.is_table, dict(m.attributes))

    def segment_names(self, prefix: str = "") -> list[str]:
        return [name for name in self.metadata.by_name if name.startswith(prefix)]

    async def read(self, name: str, offset: int, max_length: int, *,
                   wait_timeout: float | None = None, keep_in_cache: bool = True) -> ReadResult:
        """Durable bytes from ``offset``. At or beyond the end of an unsealed segment (a future read),
        waits up to ``wait_timeout`` for data reaching ``offset`` or for a seal. ``keep_in_cache=False``: bytes read
        from LTS are not added to the block cache (a one-off scan, such as loading a table index)."""
        loop = asyncio.get_running_loop()
        deadline = None if wait_timeout is None else loop.time() + wait_timeout
        while True:
            meta = self._committed(name)
            if offset < meta.start_offset:
                raise SegmentTruncatedError(name, meta.start_offset)
            if offset < 0 or (offset > meta.length and meta.sealed):
                raise InvalidOffsetError(name, offset, meta.length)
            if offset < meta.length:
                return await self._read_available(meta, offset, max_length, keep_in_cache)
            if meta.sealed:
                return ReadResult((), True, True)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is None or remaining <= 0:
                return ReadResult((), True, False)
            waiter: asyncio.Future[None] = loop.create_future()
            waiters = self.read_index.segment(meta.segment_id, meta.storage_length).waiters
            waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                if waiter in waiters:
                    waiters.remove(waiter)
                return ReadResult((), True, False)

    async def _read_available(self, meta: SegmentMetadata, offset: int, max_length: int,
                              keep_in_cache: bool) -> ReadResult:
        end = min(meta.length, offset + max(max_length, 1))
        pieces = self.read_index.gather(meta.segment_id, offset, end)
        if not pieces:
            pieces = [await self._lts.read(meta, offset, end, self.read_index, keep_in_cache=keep_in_cache)]
            self._trim_memory()
        result = ReadResult(tuple(pieces), False, False)
        reached = offset + result.size == meta.length
        return ReadResult(result.pieces, reached, reached and meta.sealed)

    # --- memory ------------------------------------------------------------------------------------

    def _trim_memory(self) -> None:
        if self.read_index.memory_bytes + self.cache.size <= self._cache_size:
            self._release_gate()
            return
        for segment_id in list(self.read_index.segments):
            self.read_index.drop_flushed(segment_id)
            if self.read_index.memory_bytes + self.cache.size <= self._cache_size:
                break
        self.cache.evict_to(max(self._cache_size - self.read_index.memory_bytes, 0))
        self._release_gate()

    async def _admit(self) -> None:
        """Wait (FIFO) while too many bytes are not in LTS; returns with nothing else admitted in between."""
        if not self._gate and not self._admitting and not self._over_limit():
            return
        self._append_waits += 1
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._gate.append(waiter)
        self._writer.wake(force=True)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._admitting -= 1
                self._release_gate()
            elif waiter in self._gate:
                self._gate.remove(waiter)
            raise
        self._admitting -= 1

    def _over_limit(self) -> bool:
        return self.read_index.unflushed_bytes + self._inflight_bytes > self._writer.config.max_unflushed_bytes

    def _release_gate(self) -> None:
        """Admit the next waiting append if there is room (all of them if the container stops)."""
        stopping = self._processor.failed or self._processor.closing
        while self._gate and not self._admitting and (stopping or not self._over_limit()):
            waiter = self._gate.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._admitting += 1
                if not stopping:
                    return
        if stopping:
            while self._gate:
                waiter = self._gate.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    self._admitting += 1
        if self._gate:
            self._writer.wake(force=True)

    def statistics(self) -> dict[str, int]:
        return {
            "segments": len(self.metadata.by_name),
            "appends": self._applier.appends,
            "append_bytes": self._applier.append_bytes,
            "log_records": self._processor.records,
            "log_operations": self._processor.operations,
            "log_bytes": self._processor.bytes_written,
            "read_index_bytes": self.read_index.memory_bytes,
            "unflushed_bytes": self.read_index.unflushed_bytes,
            "cache_bytes": self.cache.size,
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "append_waits": self._append_waits,
            "events": self._events,
            **self._writer.statistics(),
        }


def _kept(data: Buffer) -> Buffer:
    """The append data to log and keep in the read index: a view into the received bytes when it is at least
    an eighth of them (no copy on the hot path; a received buffer holds a few blocks), else a copy, so a small
    append cannot pin a large receive buffer in memory the read index does not account for. A read-only view of
    a ``bytearray`` is the wire server's receive buffer (``FrameReceiver``), never written again once handed out."""
    if isinstance(data, bytes):
        return data
    view = memoryview(data)
    base = view.obj
    if view.contiguous and view.itemsize == 1 and (
            isinstance(base, bytes) or (view.readonly and isinstance(base, bytearray))
    ) and len(base) <= 8 * view.nbytes:
        return view
    return view.tobytes()
