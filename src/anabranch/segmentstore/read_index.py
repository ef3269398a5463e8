"""The read index: durable segment data kept in memory, and the tail readers waiting for more.

Owns, per segment, the entries (offset, data, log sequence) added when an append or merge is
applied, i.e. only durable bytes. Invariants: entries are sorted by offset and never overlap;
every byte at or above a segment's ``storage_length`` (outside a pending merge's LTS part) is in
an entry; entries below ``flushed_to`` are already in LTS and may be dropped under memory pressure.
Counters: ``memory_bytes`` (all entries), ``unflushed_bytes`` (entries not yet in LTS).
It knows nothing about LTS or the log; the container decides where a read goes.
A segment has a ``SegmentReadIndex`` only while it holds entries or tail readers: an idle segment whose
bytes are all in LTS has none (``release`` drops it), so memory per idle segment is nil. ``flushed_to``
of a new one is given by the caller (the segment's ``storage_length``); a missing one means "nothing in
memory, nobody waiting".
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right

from anabranch.storage.interfaces import Buffer


def _size(data: Buffer) -> int:
    return data.nbytes if isinstance(data, memoryview) else len(data)


class SegmentReadIndex:
    __slots__ = ("datas", "flushed_to", "offsets", "seqs", "waiters")

    def __init__(self, flushed_to: int = 0) -> None:
        self.offsets: list[int] = []
        self.datas: list[Buffer] = []
        self.seqs: list[int] = []
        self.flushed_to = flushed_to
        self.waiters: list[asyncio.Future[None]] = []

    def find(self, offset: int) -> int:
        """Index of the entry holding ``offset``, or -1."""
        i = bisect_right(self.offsets, offset) - 1
        if i >= 0 and offset < self.offsets[i] + _size(self.datas[i]):
            return i
        return -1

    def next_entry_offset(self, offset: int) -> int | None:
        """Offset of the first entry starting after ``offset`` (None if none)."""
        i = bisect_right(self.offsets, offset)
        return self.offsets[i] if i < len(self.offsets) else None

    def first_unflushed_seq(self) -> int | None:
        i = self.find(self.flushed_to)
        if i < 0:
            nxt = bisect_right(self.offsets, self.flushed_to)
            if nxt >= len(self.offsets):
                return None
            i = nxt
        return self.seqs[i]

    def notify(self) -> None:
        """Wake every tail reader (data arrived, or the segment was sealed, truncated or deleted)."""
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class ReadIndex:
    def __init__(self) -> None:
        self.segments: dict[int, SegmentReadIndex] = {}
        self.memory_bytes = 0
        self.unflushed_bytes = 0

    def segment(self, segment_id: int, flushed_to: int = 0) -> SegmentReadIndex:
        """The segment's index, created (with ``flushed_to``: its ``storage_length``) if it has none."""
        index = self.segments.get(segment_id)
        if index is None:
            index = self.segments[segment_id] = SegmentReadIndex(flushed_to)
        return index

    def notify(self, segment_id: int) -> None:
        """Wake the segment's tail readers, if any."""
        index = self.segments.get(segment_id)
        if index is not None:
            index.notify()

    def release(self, segment_id: int) -> bool:
        """Drop the segment's index if it holds no entries and nobody waits on it; returns whether it did."""
        index = self.segments.get(segment_id)
        if index is None or index.offsets or index.waiters:
            return False
        del self.segments[segment_id]
        return True

    def add(self, segment_id: int, offset: int, data: Buffer, seq: int, flushed_to: int = 0) -> None:
        """Add durable bytes at ``offset`` (the part below ``flushed_to`` is dropped: LTS has it). ``flushed_to``
        is the segment's ``storage_length``, used if the segment has no index yet."""
        index = self.segment(segment_id, flushed_to)
        size = _size(data)
        if offset + size <= index.flushed_to or size == 0:
            return
        if offset < index.flushed_to:
            data = memoryview(data)[index.flushed_to - offset :]
            size -= index.flushed_to - offset
            offset = index.flushed_to
        index.offsets.append(offset)
        index.datas.append(data)
        index.seqs.append(seq)
        self.memory_bytes += size
        self.unflushed_bytes += size

    def move(self, source_id: int, target_id: int, shift: int, target_flushed_to: int) -> None:
        """Give the source's unflushed entries to the target, at ``offset + shift`` (a merge);
        ``target_flushed_to`` is the target's ``storage_length``."""
        source = self.segments.pop(source_id, None)
        if source is None:
            return
        target = self.segment(target_id, target_flushed_to)
        for offset, data, seq in zip(source.offsets, source.datas, source.seqs, strict=True):
            size = _size(data)
            end = offset + size
            self.memory_bytes -= size
            self.unflushed_bytes -= max(0, min(size, end - source.flushed_to))
            if end > source.flushed_to:
                cut = max(0, source.flushed_to - offset)
                self.add(target_id, offset + shift + cut, memoryview(data)[cut:] if cut else data, seq)
        source.notify()
        target.notify()

    def mark_flushed(self, segment_id: int, upto: int) -> None:
        """Bytes below ``upto`` are now in LTS."""
        index = self.segments.get(segment_id)
        if index is None:
            return
        if upto <= index.flushed_to:
            return
        i = max(0, bisect_right(index.offsets, index.flushed_to) - 1)
        while i < len(index.offsets) and index.offsets[i] < upto:
            start = max(index.offsets[i], index.flushed_to)
            end = min(index.offsets[i] + _size(index.datas[i]), upto)
            if end > start:
                self.unflushed_bytes -= end - start
            i += 1
        index.flushed_to = upto

    def drop_flushed(self, segment_id: int) -> int:
        """Drop entries wholly in LTS; returns the bytes freed."""
        index = self.segments.get(segment_id)
        if index is None:
            return 0
        count = 0
        freed = 0
        while count < len(index.offsets) and index.offsets[count] + _size(index.datas[count]) <= index.flushed_to:
            freed += _size(index.datas[count])
            count += 1
        if count:
            del index.offsets[:count], index.datas[:count], index.seqs[:count]
            self.memory_bytes -= freed
        return freed

    def remove(self, segment_id: int) -> None:
        index = self.segments.pop(segment_id, None)
        if index is None:
            return
        for offset, data in zip(index.offsets, index.datas, strict=True):
            size = _size(data)
            self.memory_bytes -= size
            self.unflushed_bytes -= max(0, min(size, offset + size - index.flushed_to))
        index.notify()

    def gather(self, segment_id: int, offset: int, end: int) -> list[Buffer]:
        """Contiguous in-memory pieces covering [offset, x) for the largest x <= end without a gap."""
        index = self.segments.get(segment_id)
        pieces: list[Buffer] = []
        if index is None:
            return pieces
        i = index.find(offset)
        if i < 0:
            return pieces
        pos = offset
        while pos < end and i < len(index.offsets) and index.offsets[i] <= pos:
            data = index.datas[i]
            start = pos - index.offsets[i]
            stop = min(_size(data), end - index.offsets[i])
            pieces.append(data if start == 0 and stop == _size(data) else memoryview(data)[start:stop])
            pos = index.offsets[i] + stop
            i += 1
        return pieces
