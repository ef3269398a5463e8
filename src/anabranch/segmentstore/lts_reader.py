"""Reads of segment data that is no longer in the read index: from LTS, through the block cache.

A byte below a segment's ``storage_length`` lives in the segment's own LTS object, unless it lies
in a pending merge's LTS part, which still lives in the merged source's LTS object (until the
storage writer concatenates it). Reads go in whole cache blocks (aligned to the object's offsets)
and return at most one block's worth, which callers may treat as a short read.
"""

from __future__ import annotations

from anabranch.errors import DataCorruptionError
from anabranch.segmentstore.cache import BlockCache
from anabranch.segmentstore.errors import NoSuchSegmentError, SegmentTruncatedError
from anabranch.segmentstore.metadata import SegmentMetadata
from anabranch.segmentstore.read_index import ReadIndex
from anabranch.storage.interfaces import SegmentStorage, StorageError

_RETRIES = 3


class LtsReader:
    def __init__(self, storage: SegmentStorage, cache: BlockCache) -> None:
        self._storage = storage
        self._cache = cache

    def _locate(self, meta: SegmentMetadata, offset: int) -> tuple[str, int, int, int]:
        """(LTS object, target offset of its byte 0, readable length in it, first readable byte in it)."""
        for pending in meta.pending_merges:
            if pending.target_offset <= offset < pending.target_offset + pending.lts_length:
                return pending.source_lts_name, pending.target_offset, pending.lts_length, 0
        if offset < meta.storage_length:
            return meta.lts_name, 0, meta.storage_length, meta.storage_start_offset
        raise DataCorruptionError(
            f"offset {offset} of {meta.name!r} is neither in memory nor in LTS (LTS length {meta.storage_length})"
        )

    async def read(self, meta: SegmentMetadata, offset: int, end: int, read_index: ReadIndex, *,
                   keep_in_cache: bool = True) -> bytes:
        """Bytes from ``offset`` (at most up to ``end``) read from LTS; the in-memory tail is not consulted. With
        ``keep_in_cache=False`` a block not cached yet is read without being added (a one-off scan)."""
        error: Exception | None = None
        for _ in range(_RETRIES):
            pieces = read_index.gather(meta.segment_id, offset, end)
            if pieces:
                return b"".join(pieces)
            name, base, limit, first = self._locate(meta, offset)
            try:
                return await self._read_block(name, offset - base, min(end - base, limit), limit, first,
                                              keep_in_cache)
            except StorageError as exc:
                if meta.deleted:
                    raise NoSuchSegmentError(meta.name) from exc
                if offset < meta.start_offset:
                    raise SegmentTruncatedError(meta.name, meta.start_offset) from exc
                error = exc
        raise DataCorruptionError(f"cannot read {meta.name!r} at {offset} from LTS: {error}") from error

    async def _read_block(self, name: str, position: int, stop: int, limit: int, first: int,
                          keep_in_cache: bool) -> bytes:
        size = self._cache.block_size
        block = position // size
        block_start = block * size
        block_end = min(block_start + size, limit)
        if block_start < first:
            return await self._storage.read(name, position, min(stop, block_end) - position)
        data = self._cache.get(name, block, min(stop, block_end) - block_start)
        if data is None:
            data = await self._storage.read(name, block_start, block_end - block_start)
            if keep_in_cache:
                self._cache.put(name, block, data)
        return data[position - block_start : min(stop, block_end) - block_start]
