"""``SegmentStorage`` on any ``ChunkStorage``: segments as ordered chunk lists, metadata journaled in LTS.

Owns the segment -> chunks mapping (``segment_metadata``) made durable by a ``MetadataJournal`` in the
same chunk storage, under ``ns-<namespace>/meta/``; segment data lives in ``ns-<namespace>/data/``.

Invariants:
- data is written to chunks first, and only then the metadata record that makes it visible, so a crash
  leaves at worst an unreferenced chunk (deleted on the next ``open``) or a chunk longer than its
  metadata (the extra bytes are ignored, and nothing is appended to it again);
- writes append to the last chunk only if this instance created it (so its real length is known) and
  the backend can append; otherwise, or when it is full (``max_chunk_size``), a new chunk is rolled;
- the first write of a segment without chunks, if at most ``pack_limit`` bytes, goes into a *pack*: one chunk that
  the first writes of every such segment issued in the same turn of the event loop share (a new stream's table is a
  few hundred bytes; a file, a sync and a close each cost more than its bytes). A pack member is never appended to;
  the segment's next write rolls a chunk of its own. A pack is deleted once no segment references it;
- ``concat`` relinks chunks (no copy); ``truncate`` deletes whole chunks below the new start offset;
- operations on one segment are serialized; different segments proceed concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from anabranch.storage.chunk_rules import escape_component
from anabranch.storage.interfaces import (
    BadStorageOffsetError,
    Buffer,
    ChunkNotFoundError,
    ChunkStorage,
    StorageError,
    StorageSegmentExistsError,
    StorageSegmentInfo,
    StorageSegmentNotFoundError,
    StorageSegmentNotSealedError,
    StorageSegmentSealedError,
    buffers_of,
)
from anabranch.storage.metadata_journal import MetadataJournal
from anabranch.storage.segment_metadata import Op, SegmentState

log = logging.getLogger(__name__)

DEFAULT_MAX_CHUNK_SIZE = 64 * 1024 * 1024
DEFAULT_PACK_LIMIT = 64 * 1024
"""A segment's first write of at most this many bytes goes into a pack shared with other new segments."""


@dataclass
class _Pack:
    """A pack being filled in this turn of the event loop: each member's bytes, and a future per member."""

    name: str
    pieces: list[memoryview] = field(default_factory=list)
    size: int = 0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class ChunkedSegmentStorage:
    """LTS segments made of chunks. Call ``await open()`` before use (it replays the metadata journal).

    ``namespace`` separates owners sharing one chunk storage (one per container); ``epoch`` is the owner's
    fencing epoch in cluster mode (a new owner of the namespace opens with a higher epoch).
    """

    def __init__(
        self,
        chunks: ChunkStorage,
        *,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
        pack_limit: int = DEFAULT_PACK_LIMIT,
        namespace: str = "",
        epoch: int = 0,
        snapshot_every: int = 256,
    ) -> None:
        if max_chunk_size <= 0:
            raise ValueError(f"max_chunk_size must be positive, got {max_chunk_size}")
        self._chunks = chunks
        self._max_chunk_size = max_chunk_size
        self._pack_limit = min(pack_limit, max_chunk_size)
        """0 turns packing off."""
        self._pack: _Pack | None = None
        self._pack_writes: set[asyncio.Task[None]] = set()
        self._root = f"ns-{escape_component(namespace)}/"
        self._journal = MetadataJournal(chunks, self._root + "meta/", epoch=epoch, snapshot_every=snapshot_every)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._opened = False

    async def open(self) -> None:
        """Replay the metadata from LTS and delete data chunks no segment references."""
        await self._journal.open()
        referenced = {chunk.name for state in self._journal.segments.values() for chunk in state.chunks}
        for name in await self._chunks.list(self._root + "data/"):
            if name not in referenced:
                log.info("deleting LTS chunk %s: no segment references it (left by a crash)", name)
                await self._delete_chunks([name])
        self._opened = True

    @asynccontextmanager
    async def _locked(self, *segments: str) -> AsyncIterator[None]:
        """Hold the locks of ``segments`` (taken in name order, so concurrent callers never deadlock)."""
        registered: list[str] = []
        held: list[asyncio.Lock] = []
        try:
            for name in sorted(set(segments)):
                lock, users = self._locks.get(name, (asyncio.Lock(), 0))
                self._locks[name] = (lock, users + 1)
                registered.append(name)
                await lock.acquire()
                held.append(lock)
            yield
        finally:
            for lock in held:
                lock.release()
            for name in registered:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)

    def _state(self, segment: str) -> SegmentState:
        if not self._opened:
            raise StorageError("ChunkedSegmentStorage is not open; call await open() first")
        try:
            return self._journal.segments[segment]
        except KeyError:
            raise StorageSegmentNotFoundError(f"LTS holds no segment {segment!r}") from None

    def _new_chunk_name(self) -> str:
        """A fresh chunk name: 96 random bits under the namespace's ``data/``. The journal maps segments to chunks;
        the name carries nothing else because every LTS segment keeps its chunk names in memory (with the segment's
        name in it, a new stream's table chunk name alone was about 160 bytes), and building it is on the path of
        every stream create."""
        return f"{self._root}data/{os.urandom(12).hex()}"

    async def _delete_chunks(self, names: list[str]) -> None:
        for name in names:
            try:
                await self._chunks.delete(name)
            except ChunkNotFoundError:
                pass
            except StorageError as error:
                log.warning("could not delete LTS chunk %s (deleted on next open): %s", name, error)

    async def create(self, segment: str) -> None:
        async with self._locked(segment):
            if not self._opened:
                raise StorageError("ChunkedSegmentStorage is not open; call await open() first")
            if segment in self._journal.segments:
                raise StorageSegmentExistsError(f"LTS already holds segment {segment!r}")
            await self._journal.commit([["create", segment]])

    async def write(self, segment: str, offset: int, data: Buffer | Sequence[Buffer]) -> None:
        # The pieces (the storage writer hands over the read index's blocks) go down to the chunk storage as they
        # are: joining them copied every byte moved to LTS once more, on the event loop.
        pieces = [memoryview(part).cast("B") for part in buffers_of(data)]
        size = sum(piece.nbytes for piece in pieces)
        async with self._locked(segment):
            state = self._state(segment)
            if state.sealed:
                raise StorageSegmentSealedError(f"LTS segment {segment!r} is sealed")
            if offset != state.length:
                raise BadStorageOffsetError(
                    f"write to LTS segment {segment!r} at offset {offset}, but its length is {state.length}"
                )
            if not size:
                return
            try:
                await self._journal.commit(await self._write_chunks(segment, state, pieces, size))
            except BaseException:
                state.tail_appendable = False
                raise
            written = self._journal.segments.get(segment)
            if written is not None:
                written.tail_appendable = self._chunks.supports_append and not written.chunks[-1].packed

    async def _write_chunks(self, segment: str, state: SegmentState, pieces: list[memoryview],
                            total: int) -> list[Op]:
        if not state.chunks and total <= self._pack_limit:
            pack, offset = await self._packed(pieces, total)
            return [["add", segment, pack, state.length, total, offset]]
        ops: list[Op] = []
        position = 0
        tail = state.chunks[-1] if state.chunks else None
        if tail is not None and state.tail_appendable and tail.length < self._max_chunk_size:
            size = min(self._max_chunk_size - tail.length, total)
            await self._chunks.write(tail.name, tail.length, _byte_range(pieces, 0, size, total))
            ops.append(["grow", segment, tail.length + size])
            position = size
        while position < total:
            size = min(self._max_chunk_size, total - position)
            name = self._new_chunk_name()
            await self._chunks.create(name)
            await self._chunks.write(name, 0, _byte_range(pieces, position, position + size, total))
            ops.append(["add", segment, name, state.length + position, size])
            position += size
        return ops

    async def _packed(self, pieces: list[memoryview], size: int) -> tuple[str, int]:
        """Put ``pieces`` into this turn's pack; returns the pack's name and their offset in it once it is durable."""
        pack = self._pack
        if pack is None or pack.size + size > self._max_chunk_size:
            pack = self._pack = _Pack(self._new_chunk_name())
            asyncio.get_running_loop().call_soon(self._close_pack, pack)
        offset = pack.size
        pack.pieces.extend(pieces)
        pack.size += size
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pack.waiters.append(waiter)
        await waiter
        return pack.name, offset

    def _close_pack(self, pack: _Pack) -> None:
        if self._pack is pack:
            self._pack = None
        task = asyncio.get_running_loop().create_task(self._write_pack(pack), name=f"lts-pack-{pack.name}")
        self._pack_writes.add(task)
        task.add_done_callback(self._pack_writes.discard)
        task.add_done_callback(_answer_pack(pack))

    async def _write_pack(self, pack: _Pack) -> None:
        await self._chunks.create(pack.name)
        await self._chunks.write(pack.name, 0, pack.pieces)

    async def read(self, segment: str, offset: int, length: int) -> bytes:
        state = self._state(segment)
        if offset < state.start_offset or offset > state.length or length < 0:
            raise BadStorageOffsetError(
                f"read of LTS segment {segment!r} at offset {offset} is outside [{state.start_offset}, {state.length}]"
            )
        end = min(offset + length, state.length)
        if end == offset:
            return b""
        chunks = list(state.chunks)
        parts: list[bytes] = []
        index = state.chunk_index_at(offset)
        position = offset
        while position < end:
            chunk = chunks[index]
            size = min(chunk.end, end) - position
            part = await self._chunks.read(chunk.name, chunk.position(position), size)
            if len(part) != size:
                raise StorageError(f"LTS chunk {chunk.name!r} is shorter than its metadata says")
            parts.append(part)
            position += size
            index += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def get_info(self, segment: str) -> StorageSegmentInfo:
        state = self._state(segment)
        return StorageSegmentInfo(segment, state.length, state.start_offset, state.sealed)

    async def exists(self, segment: str) -> bool:
        if not self._opened:
            raise StorageError("ChunkedSegmentStorage is not open; call await open() first")
        return segment in self._journal.segments

    async def seal(self, segment: str) -> None:
        async with self._locked(segment):
            if not self._state(segment).sealed:
                await self._journal.commit([["seal", segment]])

    async def concat(self, target: str, source: str) -> None:
        if target == source:
            raise StorageError(f"cannot concat LTS segment {target!r} into itself")
        async with self._locked(target, source):
            target_state, source_state = self._state(target), self._state(source)
            if target_state.sealed:
                raise StorageSegmentSealedError(f"LTS concat target {target!r} is sealed")
            if not source_state.sealed:
                raise StorageSegmentNotSealedError(f"LTS concat source {source!r} must be sealed first")
            if source_state.start_offset:
                raise BadStorageOffsetError(f"LTS concat source {source!r} is truncated; it cannot be merged")
            await self._journal.commit([["concat", target, source]])
            self._journal.segments[target].tail_appendable = False

    async def truncate(self, segment: str, offset: int) -> None:
        async with self._locked(segment):
            state = self._state(segment)
            if offset > state.length:
                raise BadStorageOffsetError(
                    f"truncate of LTS segment {segment!r} at {offset} is beyond its length {state.length}"
                )
            if offset <= state.start_offset:
                return
            released = await self._journal.commit([["truncate", segment, offset]])
            if not self._journal.segments[segment].chunks:
                self._journal.segments[segment].tail_appendable = False
            await self._delete_chunks(released)

    async def delete(self, segment: str) -> None:
        async with self._locked(segment):
            self._state(segment)
            released = await self._journal.commit([["delete", segment]])
            await self._delete_chunks(released)

    async def close(self) -> None:
        await self._journal.close()
        self._opened = False


def _answer_pack(pack: _Pack) -> Callable[[asyncio.Task[None]], None]:
    """Tell every member of ``pack`` how its write ended. A member that stopped waiting (cancelled) is not recorded;
    its bytes in the pack are only space, freed with the pack."""

    def answer(task: asyncio.Task[None]) -> None:
        error = StorageError(f"the write of LTS pack {pack.name!r} was cancelled") if task.cancelled() \
            else task.exception()
        for waiter in pack.waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    return answer


def _byte_range(pieces: list[memoryview], start: int, end: int, total: int) -> list[memoryview]:
    """Bytes ``[start, end)`` of the pieces laid end to end, as views (no copy); all of them if that is the range."""
    if start == 0 and end == total:
        return pieces
    out: list[memoryview] = []
    position = 0
    for piece in pieces:
        piece_end = position + piece.nbytes
        if piece_end > start and position < end:
            out.append(piece[max(start - position, 0) : min(end, piece_end) - position])
        position = piece_end
        if position >= end:
            break
    return out
