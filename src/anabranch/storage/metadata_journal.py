"""The durable home of LTS segment metadata: a journal of checksummed records plus snapshots, in LTS chunks.

Layout under ``prefix`` (e.g. ``ns-x/meta/``): ``snapshot-<epoch>-<gen>`` holds the whole metadata at
the start of a generation; ``journal-<epoch>-<gen>-<idx>`` chunks hold the records of that generation
in order. Each record (and the snapshot) is framed ``magic | length | crc32 | CBOR payload``.

Invariants:
- a ``commit`` returns only after its record is durable in LTS and applied to ``segments``;
  concurrent commits are grouped into one record (one chunk write);
- a new generation's snapshot is durable before older generations are deleted, so opening picks the
  newest valid snapshot and replays its journal; a torn record may only end the newest journal chunk
  (it was never acked); anything else that fails a checksum is a ``DataCorruptionError``;
- every ``open`` starts a new generation, so nothing is ever appended after a torn tail;
- a new generation starts after ``snapshot_every`` records, and not before the generation's journal holds as many
  bytes as its snapshot: the snapshot holds every segment, so rolling by record count alone would rewrite the whole
  metadata every few records once there are many segments (quadratic); this keeps snapshot writes linear in the
  journal bytes written;
- generations are ordered by (owner epoch, number): metadata written by a fenced-out owner with a lower
  epoch is ignored, and opening with a lower epoch than LTS holds raises ``StorageFencedError``;
- after a failed journal write nothing more is written (the outcome is unknown): the journal fails
  stop and a new instance must be opened, which replays the truth from LTS. Except ``StorageFullError``:
  the chunk storage wrote nothing, so the commits of that record fail (retriable) and the journal goes on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
import zlib

import cbor2

from anabranch.errors import DataCorruptionError
from anabranch.storage.interfaces import Buffer, ChunkStorage, StorageError, StorageFullError
from anabranch.storage.segment_metadata import (
    Op,
    PackRefs,
    SegmentState,
    apply_ops,
    decode_snapshot,
    encode_snapshot,
)

log = logging.getLogger(__name__)

_MAGIC = b"ABMJ"
_HEADER = struct.Struct(">4sII")
_NAME = re.compile(r"(snapshot|journal)-(\d{12})-(\d{12})(?:-(\d{12}))?")
Generation = tuple[int, int]


class MetadataJournalFailedError(StorageError):
    """A metadata journal write failed, so this LTS instance stopped; open a new one to recover."""


class StorageFencedError(StorageError):
    """LTS metadata was written by an owner with a higher epoch: this instance must not write any more."""


def frame_header(payload: bytes | memoryview) -> bytes:
    return _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload))


def frame(payload: bytes) -> bytes:
    return frame_header(payload) + payload


def parse_frames(data: bytes, name: str, *, torn_tail_allowed: bool) -> list[bytes]:
    """Payloads of the frames in ``data``; a bad frame ends the list if allowed, else raises."""
    payloads: list[bytes] = []
    view = memoryview(data)
    position = 0
    while position < len(data):
        bad = len(data) - position < _HEADER.size
        if not bad:
            magic, length, crc = _HEADER.unpack_from(view, position)
            end = position + _HEADER.size + length
            payload = view[position + _HEADER.size : end]
            bad = magic != _MAGIC or end > len(data) or zlib.crc32(payload) != crc
        if bad:
            if torn_tail_allowed:
                log.warning("LTS metadata chunk %s: dropping a torn record at byte %d", name, position)
                return payloads
            raise DataCorruptionError(f"LTS metadata chunk {name!r} has a corrupt record at byte {position}")
        payloads.append(bytes(payload))
        position = end
    return payloads


class MetadataJournal:
    """Segment metadata (``segments``) made durable as journal records and snapshots in ``chunks``."""

    def __init__(
        self,
        chunks: ChunkStorage,
        prefix: str,
        *,
        epoch: int = 0,
        snapshot_every: int = 256,
        journal_chunk_limit: int = 4 * 1024 * 1024,
    ) -> None:
        self.segments: dict[str, SegmentState] = {}
        self.packs = PackRefs()
        """Members per pack chunk of ``segments``."""
        self._chunks = chunks
        self._prefix = prefix
        self._epoch = epoch
        self._snapshot_every = snapshot_every
        self._journal_chunk_limit = journal_chunk_limit
        self._generation: Generation = (epoch, 0)
        self._journal_index = -1
        self._journal_chunk: str | None = None
        self._journal_length = 0
        self._records_in_generation = 0
        self._generation_bytes = 0
        self._snapshot_bytes = 0
        self._generation_chunks: list[str] = []
        self._pending: list[tuple[list[Op], asyncio.Future[list[str]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    def _snapshot_name(self, generation: Generation) -> str:
        return f"{self._prefix}snapshot-{generation[0]:012d}-{generation[1]:012d}"

    def _journal_name(self, generation: Generation, index: int) -> str:
        return f"{self._prefix}journal-{generation[0]:012d}-{generation[1]:012d}-{index:012d}"

    async def _read_whole(self, name: str) -> bytes:
        return await self._chunks.read(name, 0, await self._chunks.length(name))

    async def open(self) -> None:
        """Load the newest valid snapshot, replay its journal, then start a new generation.

        Raises ``StorageFencedError`` if an owner with a higher epoch has written metadata already.
        """
        snapshots: list[Generation] = []
        journals: dict[Generation, list[int]] = {}
        names = await self._chunks.list(self._prefix)
        for name in names:
            match = _NAME.fullmatch(name[len(self._prefix) :])
            if match is None:
                continue
            key = (int(match.group(2)), int(match.group(3)))
            if match.group(1) == "snapshot":
                snapshots.append(key)
            else:
                journals.setdefault(key, []).append(int(match.group(4)))
        newest = max([*snapshots, *journals], default=(0, 0))
        if newest[0] > self._epoch:
            raise StorageFencedError(
                f"LTS metadata under {self._prefix!r} belongs to epoch {newest[0]}, newer than this owner's "
                f"epoch {self._epoch}; this container is owned elsewhere now"
            )
        generation: Generation = (0, 0)
        segments: dict[str, SegmentState] = {}
        packs = PackRefs()
        for candidate in sorted(snapshots, reverse=True):
            name = self._snapshot_name(candidate)
            frames = parse_frames(await self._read_whole(name), name, torn_tail_allowed=True)
            if len(frames) == 1:
                generation, segments = candidate, decode_snapshot(frames[0])
                packs = PackRefs.of(segments)
                break
            log.warning("LTS metadata snapshot %s under %r is torn; using an older one", candidate, self._prefix)
        indexes = sorted(journals.get(generation, []))
        for position, index in enumerate(indexes):
            name = self._journal_name(generation, index)
            last = position == len(indexes) - 1
            for payload in parse_frames(await self._read_whole(name), name, torn_tail_allowed=last):
                apply_ops(segments, packs, cbor2.loads(payload))
        self.segments, self.packs = segments, packs
        self._generation = (self._epoch, max(key[1] for key in [generation, *snapshots, *journals]) + 1)
        await self._write_snapshot()
        stale = [name for name in names if _NAME.fullmatch(name[len(self._prefix) :])]
        await self._delete_quietly(stale)
        log.info("LTS metadata under %r: %d segments, generation %s", self._prefix, len(segments), self._generation)

    async def _write_snapshot(self) -> None:
        name = self._snapshot_name(self._generation)
        payload = encode_snapshot(self.segments)
        snapshot: list[Buffer] = [frame_header(payload), payload]  # two buffers: the payload is not copied
        await self._chunks.create(name)
        await self._chunks.write(name, 0, snapshot)
        self._generation_chunks = [name]
        self._journal_index = -1
        self._journal_chunk = None
        self._records_in_generation = 0
        self._generation_bytes = 0
        self._snapshot_bytes = _HEADER.size + len(payload)

    async def _delete_quietly(self, names: list[str]) -> None:
        for name in names:
            try:
                await self._chunks.delete(name)
            except StorageError as error:
                log.warning("could not delete old LTS metadata chunk %s (deleted on next open): %s", name, error)

    async def commit(self, ops: list[Op]) -> list[str]:
        """Make ``ops`` durable, apply them; return the chunk names they released (for deletion)."""
        if self._failure is not None:
            raise MetadataJournalFailedError(
                f"LTS metadata journal under {self._prefix!r} failed earlier; open a new storage instance"
            ) from self._failure
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._pending.append((ops, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._append_record(frame(cbor2.dumps([op for ops, _ in batch for op in ops])))
            except StorageFullError as error:
                for _, future in batch + self._pending:
                    if not future.done():
                        future.set_exception(error)
                self._pending = []
                return
            except BaseException as error:
                self._fail(error, batch)
                return
            for ops, future in batch:
                released = apply_ops(self.segments, self.packs, ops)
                if not future.done():
                    future.set_result(released)
            if (self._records_in_generation >= self._snapshot_every
                    and self._generation_bytes >= self._snapshot_bytes):
                await self._roll_generation()

    async def _append_record(self, record: bytes) -> None:
        if (
            self._journal_chunk is None
            or not self._chunks.supports_append
            or self._journal_length >= self._journal_chunk_limit
        ):
            name = self._journal_name(self._generation, self._journal_index + 1)
            await self._chunks.create(name)
            self._journal_index += 1
            self._journal_chunk = name
            self._journal_length = 0
            self._generation_chunks.append(name)
        await self._chunks.write(self._journal_chunk, self._journal_length, record)
        self._journal_length += len(record)
        self._records_in_generation += 1
        self._generation_bytes += len(record)

    async def _roll_generation(self) -> None:
        old = self._generation_chunks
        previous = self._generation
        self._generation = (self._epoch, self._generation[1] + 1)
        try:
            await self._write_snapshot()
        except StorageFullError as error:
            log.warning("LTS metadata under %r: no space for a new snapshot (%s); staying in generation %s",
                        self._prefix, error, previous)
            failed = self._snapshot_name(self._generation)
            self._generation = previous
            await self._delete_quietly([failed])
            return
        except BaseException as error:
            self._fail(error, [])
            return
        await self._delete_quietly(old)

    def _fail(self, error: BaseException, batch: list[tuple[list[Op], asyncio.Future[list[str]]]]) -> None:
        log.error("LTS metadata journal under %r failed; stopping: %s", self._prefix, error)
        self._failure = error
        batch = batch + self._pending
        self._pending = []
        for _, future in batch:
            if not future.done():
                exc = MetadataJournalFailedError(f"LTS metadata write under {self._prefix!r} failed: {error}")
                exc.__cause__ = error
                future.set_exception(exc)

    async def close(self) -> None:
        """Wait for pending commits to finish."""
        if self._flusher is not None:
            await asyncio.wait([self._flusher])
