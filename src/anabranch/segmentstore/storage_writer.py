"""The storage writer: moves durable data and state changes from the read index to LTS, then
checkpoints the metadata and truncates Tier-1.

One background task runs cycles (every ``flush_interval``, or sooner when unflushed bytes pass
``flush_threshold`` or someone calls ``flush_now``). A cycle handles the segments that are due: with
at least ``segment_flush_bytes`` unflushed, or unflushed for ``max_flush_delay`` seconds, or with a
pending seal/merge (all of them under memory pressure or in ``flush_now``). Segments without a
pending merge are flushed ``concurrent_flushes`` at a time (all of a batch finish before the next
starts), then those with one, one by one. Per segment it creates its LTS object, writes the bytes
above ``storage_length`` in large writes, concatenates pending merges when the LTS length reaches
their offset, seals, truncates; then it deletes the LTS objects of deleted segments.
After a cycle that changed LTS it writes a checkpoint record and truncates Tier-1 below the newest
checkpoint that precedes every record still holding unflushed data. Invariants: ``storage_length``
only grows; Tier-1 records holding bytes not in LTS are never truncated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from anabranch.clock import Clock, SystemClock
from anabranch.errors import DataCorruptionError
from anabranch.segmentstore.durable_log import CheckpointRequest, OperationProcessor
from anabranch.segmentstore.errors import ContainerClosedError, DiskFullError
from anabranch.segmentstore.heap import PROCESS_HEAP, HeapTrimmer
from anabranch.segmentstore.metadata import ContainerMetadata, PendingMerge, SegmentMetadata
from anabranch.segmentstore.read_index import ReadIndex
from anabranch.storage.interfaces import (
    BadStorageOffsetError,
    DurableDataLog,
    SegmentStorage,
    StorageError,
    StorageSegmentExistsError,
    StorageSegmentNotFoundError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StorageWriterConfig:
    max_unflushed_bytes: int = 128 * 1024 * 1024
    """Appends wait while more bytes than this are not yet in LTS."""
    flush_threshold: int = 4 * 1024 * 1024
    """A cycle starts early once this many bytes are not yet in LTS."""
    flush_interval: float = 0.5
    segment_flush_bytes: int = 1024 * 1024
    """A segment with this many bytes not in LTS is flushed in the next cycle."""
    max_flush_delay: float = 2.0
    """A segment's bytes stay at most about this long (plus one interval) out of LTS."""
    max_write_bytes: int = 16 * 1024 * 1024
    release_idle_after: float = 10.0
    """A segment not written for this long whose bytes are all in LTS gives up its in-memory bytes and read-index
    entry (later reads go to LTS through the block cache): idle segments cost no read-index memory."""
    release_scan_interval: float = 1.0
    """Seconds between the cycles' looks for idle segments (a look visits every segment in the read index: at a
    thousand creates a second, looking every cycle cost about 2 % of the event loop)."""
    concurrent_flushes: int = 256
    """Segments flushed at once in a cycle: their LTS metadata updates are grouped into one journal record, their
    chunk writes go to the worker thread as one job, and the first writes of new small segments share one pack chunk
    (a clean stop with many small segments is bound by syncs, not bytes; 256 against 32 cut the server CPU per stream
    create by about 10 %)."""
    full_scan_cycles: int = 64
    """Every this many cycles (and in a forced one) the writer looks at every segment, not only the dirty ones."""
    segments_per_checkpoint_record: int = 8
    """A background cycle writes a checkpoint only once this many segments per Tier-1 record written since the last
    one (a checkpoint holds every segment: with many idle segments, writing one per cycle would cost more than the
    records it lets recovery skip). ``flush_now`` and the last cycle of ``close`` always write one."""


class StorageWriter:
    def __init__(self, container_id: int, metadata: ContainerMetadata, read_index: ReadIndex,
                 storage: SegmentStorage, processor: OperationProcessor, durable_log: DurableDataLog,
                 config: StorageWriterConfig, on_progress: Callable[[], None], clock: Clock | None = None,
                 heap: HeapTrimmer = PROCESS_HEAP) -> None:
        self._container_id = container_id
        self._metadata = metadata
        self._read_index = read_index
        self._storage = storage
        self._processor = processor
        self._log = durable_log
        self.config = config
        self._on_progress = on_progress
        self._heap = heap
        self._clock = clock or SystemClock()
        self._dirty_since: dict[int, float] = {}
        self._force = False
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._checkpoints: list[int] = []
        self._last_checkpoint = 0
        self._release_scanned_at = -math.inf
        self._truncated_upto = 0
        self.bytes_flushed = 0
        self.cycles = 0
        self.checkpoints_written = 0
        self.errors = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"storage-writer-{self._container_id}")

    def wake(self, *, force: bool = False) -> None:
        """Start a cycle now; ``force`` flushes every segment (appends are waiting for room)."""
        self._force = self._force or force
        self._wakeup.set()

    def maybe_wake(self) -> None:
        if self._read_index.unflushed_bytes >= self.config.flush_threshold:
            self._wakeup.set()

    async def flush_now(self) -> None:
        """Run a cycle that flushes every segment, whether due or not."""
        async with self._lock:
            await self._cycle(force=True)

    async def close(self) -> None:
        """Let the current cycle finish (a cancelled LTS write could complete unrecorded), stop, then
        run one last full cycle."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(ContainerClosedError):
            await self.flush_now()

    async def abort(self) -> None:
        """Stop at once (a simulated crash; recovery reconciles with whatever reached LTS)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.config.flush_interval)
            self._wakeup.clear()
            force = self._force or self._read_index.unflushed_bytes >= self.config.flush_threshold
            self._force = False
            try:
                async with self._lock:
                    await self._cycle(force=force)
            except ContainerClosedError:
                return
            except DiskFullError as exc:
                self.errors += 1
                log.warning("container %d: storage writer cannot checkpoint: %s", self._container_id, exc)
            except Exception:
                self.errors += 1
                log.exception("container %d: storage writer cycle failed; retrying", self._container_id)

    def _due(self, meta: SegmentMetadata, force: bool, now: float) -> bool:
        if force or meta.pending_merges or (meta.sealed and not meta.storage_sealed):
            return True
        if meta.length - meta.storage_length >= self.config.segment_flush_bytes:
            return True
        since = self._dirty_since.setdefault(meta.segment_id, now)
        return now - since >= self.config.max_flush_delay

    async def _cycle(self, *, force: bool) -> None:
        self.cycles += 1
        now = self._clock.monotonic()
        for segment_id in [i for i in self._dirty_since if i not in self._metadata.segments]:
            del self._dirty_since[segment_id]
        dirty = self._metadata.dirty
        full_scan = force or self.cycles % self.config.full_scan_cycles == 0
        due: list[SegmentMetadata] = []
        for segment_id in list(self._metadata.segments if full_scan else dirty):
            meta = self._metadata.segments.get(segment_id)
            if meta is None or meta.deleted or not (meta.unflushed or meta.pending_merges):
                dirty.discard(segment_id)
                continue
            dirty.add(segment_id)
            if self._due(meta, force, now):
                due.append(meta)
        if len(dirty) * 4 < len(self._metadata.segments) and len(dirty) < 1024:
            self._metadata.dirty = set(dirty)  # a set keeps the table of its largest size: give it back
        plain = [meta for meta in due if not meta.pending_merges]
        changed = False
        for start in range(0, len(plain), self.config.concurrent_flushes):
            batch = plain[start : start + self.config.concurrent_flushes]
            results = await asyncio.gather(*(self._flush_one(meta, merges=False) for meta in batch),
                                           return_exceptions=True)
            changed = any(result is True for result in results) or changed
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        for meta in due:
            if meta.pending_merges and not meta.deleted:
                changed = await self._flush_one(meta, merges=True) or changed
        changed = await self._delete_objects() or changed
        checkpointed = False
        if changed and not self._processor.failed and (self._stopping or force or self._checkpoint_due()):
            await self._checkpoint_and_truncate()
            checkpointed = True
        released = 0
        if now - self._release_scanned_at >= self.config.release_scan_interval:
            self._release_scanned_at = now
            released = self.release_idle(self.config.release_idle_after)
        if released or checkpointed:
            self._heap.trim()
        self._on_progress()

    def release_idle(self, idle_for: float) -> int:
        """Drop the in-memory bytes and read-index entries of segments not written for ``idle_for`` seconds whose
        bytes are all in LTS (later reads go to LTS) and that no tail reader waits on; returns how many."""
        cutoff = (self._clock.time() - idle_for) * 1000
        released = 0
        for segment_id, index in list(self._read_index.segments.items()):
            meta = self._metadata.segments.get(segment_id)
            if index.waiters or (meta is not None and meta.last_modified_ms > cutoff):
                continue
            self._read_index.drop_flushed(segment_id)
            self._read_index.release(segment_id)
            released += 1
        return released

    async def _flush_one(self, meta: SegmentMetadata, *, merges: bool) -> bool:
        """Flush one segment; returns whether LTS changed. A storage error is logged (retried next cycle)."""
        try:
            await self._flush_segment(meta, merges=merges)
            if not meta.pending_merges:
                self._dirty_since.pop(meta.segment_id, None)
            return True
        except StorageError as exc:
            self.errors += 1
            log.warning("container %d: cannot move %r to LTS yet: %s", self._container_id, meta.name, exc)
            return False
        finally:
            self._on_progress()

    async def _ensure_in_lts(self, meta: SegmentMetadata) -> None:
        """Create the segment in LTS before the first thing that needs it there (bytes, a seal, a truncation, a
        concat into it). An empty segment is never created in LTS: most new streams' data segments stay empty for
        a while, and an LTS create is a metadata journal record (reads below the length and concats of an empty
        source never look for it; a delete of a segment LTS lacks is a no-op)."""
        if not meta.storage_exists:
            with contextlib.suppress(StorageSegmentExistsError):
                await self._storage.create(meta.lts_name)
            meta.storage_exists = True

    async def _flush_segment(self, meta: SegmentMetadata, *, merges: bool = True) -> None:
        """Move the segment's bytes and state to LTS. Without ``merges`` it stops at a pending merge: segments are
        then flushed concurrently, and a concat must not run while its source may still be being written."""
        while not meta.deleted:
            pending = meta.pending_merges[0] if meta.pending_merges else None
            if pending is not None and pending.target_offset <= meta.storage_length:
                if not merges:
                    return
                await self._ensure_in_lts(meta)
                await self._concat(meta, pending)
                continue
            if meta.storage_length >= meta.length:
                break
            await self._ensure_in_lts(meta)
            stop = min(pending.target_offset if pending else meta.length,
                       meta.storage_length + self.config.max_write_bytes)
            pieces = self._read_index.gather(meta.segment_id, meta.storage_length, stop)
            if not pieces:
                raise DataCorruptionError(
                    f"bytes {meta.storage_length}..{stop} of {meta.name!r} are neither in LTS nor in memory"
                )
            size = sum(p.nbytes if isinstance(p, memoryview) else len(p) for p in pieces)
            try:
                await self._storage.write(meta.lts_name, meta.storage_length, pieces)
            except BadStorageOffsetError:
                if not await self._adopt_lts_length(meta):
                    raise
                continue
            if meta.deleted:
                return
            self._advance(meta, meta.storage_length + size)
        if meta.deleted:
            return
        if meta.sealed and not meta.storage_sealed and meta.storage_length == meta.length:
            await self._ensure_in_lts(meta)
            await self._storage.seal(meta.lts_name)
            meta.storage_sealed = True
        truncate_at = min(meta.start_offset, meta.storage_length)
        if truncate_at > meta.storage_start_offset:
            await self._storage.truncate(meta.lts_name, truncate_at)
            meta.storage_start_offset = truncate_at

    def _advance(self, meta: SegmentMetadata, storage_length: int) -> None:
        self.bytes_flushed += storage_length - meta.storage_length
        meta.storage_length = storage_length
        if storage_length == meta.length:  # share one int object between the equal lengths of an idle segment
            meta.storage_length = meta.length
            if meta.staged_length == meta.length:
                meta.staged_length = meta.length
        self._read_index.mark_flushed(meta.segment_id, storage_length)
        self._on_progress()

    async def _adopt_lts_length(self, meta: SegmentMetadata) -> bool:
        """After a rejected write: if LTS already holds more of this segment (a write that completed
        unrecorded), take its length. Returns whether anything was adopted."""
        info = await self._storage.get_info(meta.lts_name)
        limit = meta.pending_merges[0].target_offset if meta.pending_merges else meta.length
        if meta.storage_length < info.length <= limit:
            log.warning("container %d: LTS holds %d bytes of %r, more than recorded (%d); adopting them",
                        self._container_id, info.length, meta.name, meta.storage_length)
            self._advance(meta, info.length)
            return True
        return False

    async def _concat(self, meta: SegmentMetadata, pending: PendingMerge) -> None:
        added = 0
        if await self._storage.exists(pending.source_lts_name):
            info = await self._storage.get_info(pending.source_lts_name)
            if not info.sealed:
                await self._storage.seal(pending.source_lts_name)
            if info.length > 0:
                await self._storage.concat(meta.lts_name, pending.source_lts_name)
            else:
                await self._storage.delete(pending.source_lts_name)
            added = info.length
        meta.pending_merges = tuple(p for p in meta.pending_merges if p is not pending)
        if not meta.deleted:
            self._advance(meta, meta.storage_length + added)

    async def _delete_objects(self) -> bool:
        deleted = False
        for name in list(self._metadata.lts_deletes):
            try:
                await self._storage.delete(name)
            except StorageSegmentNotFoundError:
                pass
            except StorageError as exc:
                self.errors += 1
                log.warning("container %d: cannot delete LTS object %r yet: %s", self._container_id, name, exc)
                continue
            self._metadata.lts_deletes.remove(name)
            deleted = True
        return deleted

    def _checkpoint_due(self) -> bool:
        records = self._processor.last_sequence - self._last_checkpoint
        return records * self.config.segments_per_checkpoint_record >= len(self._metadata.segments)

    async def _checkpoint_and_truncate(self) -> None:
        sequence = await self._processor.submit(CheckpointRequest(self._metadata.serialize))
        self._last_checkpoint = sequence
        self.checkpoints_written += 1
        self._checkpoints.append(sequence)
        needed = [seq for index in self._read_index.segments.values()
                  if (seq := index.first_unflushed_seq()) is not None]
        oldest_needed = min(needed) if needed else None
        usable = [c for c in self._checkpoints if oldest_needed is None or c < oldest_needed]
        if not usable:
            return
        newest = max(usable)
        self._checkpoints = [c for c in self._checkpoints if c >= newest]
        if newest - 1 > self._truncated_upto:
            await self._log.truncate(newest - 1)
            self._truncated_upto = newest - 1

    def statistics(self) -> dict[str, int]:
        return {
            "lts_bytes_flushed": self.bytes_flushed,
            "writer_cycles": self.cycles,
            "checkpoints": self.checkpoints_written,
            "writer_errors": self.errors,
            "tier1_truncated_upto": self._truncated_upto,
        }
