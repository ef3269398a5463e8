"""TableStore: key-value tables on top of table segments of a SegmentStore.

Owns the in-memory index of each table (key → version, value), rebuilt lazily on first use after a restart
by scanning the table segment (see :mod:`records`). Invariants:
- every change is ONE conditional append (``expected_offset`` = the table's current length) of one batch, made
  under the table's lock after checking the conditions against the index, so a batch is all-or-nothing and
  durable before it is acknowledged; the index changes only after the append returned;
- a version is the segment offset of the entry's record, so versions strictly increase;
- every live entry lies at or after the segment's start offset: compaction (see :mod:`compaction`) copies live
  entries out of the oldest part of the log and truncates it, in a background task per table that takes the
  table's lock only for its copy-and-truncate, like an update;
- continuation tokens name a key, never an offset, so they survive compaction; a delta read from below the start
  offset answers ``should_clear`` and scans from the start offset;
- bytes that do not form a valid batch (someone appended to the segment directly, bypassing the table store)
  never stop a table: a scan skips them up to the next valid batch (or the end) and reports them once to the
  segment store's quarantine log (``SegmentStore.health()``); the rest of the table serves.
- only the ``max_cached_tables`` most recently used indexes stay in memory (an idle table costs nothing but its
  segment); an evicted index is rebuilt by the next request, and a table that is locked (a request under way) or
  being compacted is never evicted. Per-table locks exist only while someone holds or waits for them.
It knows nothing about the wire protocol.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anabranch.errors import DataCorruptionError
from anabranch.protocol.commands import NO_VERSION, NOT_EXISTS, NULL_TABLE_SEGMENT_OFFSET
from anabranch.segmentstore.errors import BadOffsetError, SegmentStoreError, SegmentTruncatedError
from anabranch.segmentstore.tables.compaction import CompactionPolicy
from anabranch.segmentstore.tables.errors import (
    TableArgumentError,
    TableError,
    TableKeyBadVersionError,
    TableKeyDoesNotExistError,
    TableSegmentNotEmptyError,
)
from anabranch.segmentstore.tables.records import (
    BATCH_HEADER,
    MAGIC,
    Record,
    RecordKind,
    batch_size,
    decode_batch,
    encode_batch,
)
from anabranch.segmentstore.tables.table_index import TableIndex, check_key, check_value, record_end

if TYPE_CHECKING:
    from anabranch.segmentstore.store import SegmentStore

log = logging.getLogger(__name__)

PAGE_BYTES = 2 * 1024 * 1024
READ_CHUNK = 1024 * 1024
_TOKEN_PREFIX = b"\x01"
_MAGIC_BYTES = BATCH_HEADER.pack(MAGIC, 0, 0)[:4]
DEFAULT_MAX_CACHED_TABLES = 1024
"""Table indexes kept in memory; beyond it the least recently used idle ones are dropped (rebuilt on demand)."""


_Grouped = tuple[Sequence[tuple[bytes, bytes, int]], "asyncio.Future[list[int]]"]
GROUP_BYTES = 1024 * 1024
"""Grouped updates written in one append hold at most about this many bytes (one larger update goes alone)."""


def _take_group(queue: list[_Grouped]) -> list[_Grouped]:
    """Remove and return the oldest updates of ``queue`` that fit one append."""
    size = 0
    count = 0
    for entries, _ in queue:
        size += sum(len(key) + len(value) + 32 for key, value, _ in entries)
        if count and size > GROUP_BYTES:
            break
        count += 1
    group = queue[:count]
    del queue[:count]
    return group


class _TableLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


@dataclass(frozen=True, slots=True)
class TableInfo:
    start_offset: int
    length: int
    entry_count: int


@dataclass(frozen=True, slots=True)
class DeltaRead:
    """Live entries (key, version, value) seen in a window of the record log; see spec §5.2."""

    entries: list[tuple[bytes, int, bytes]]
    should_clear: bool
    reached_end: bool
    last_position: int


class TableStore:
    """Key-value tables stored in table segments of ``store``."""

    def __init__(self, store: SegmentStore, compaction: CompactionPolicy | None = None, *,
                 max_cached_tables: int = DEFAULT_MAX_CACHED_TABLES) -> None:
        self._store = store
        self.compaction = compaction or CompactionPolicy()
        self.max_cached_tables = max(1, max_cached_tables)
        self._tables: OrderedDict[str, TableIndex] = OrderedDict()
        self._locks: dict[str, _TableLock] = {}
        self._compactions: dict[str, asyncio.Task[None]] = {}
        self._grouped: dict[str, list[_Grouped]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._invalidations = 0
        """Bumped by ``forget_where``: an index loaded across a bump may be stale and is not cached."""

    # --- lifecycle ---------------------------------------------------------------------------

    async def create_table(self, name: str) -> None:
        async with self._lock(name):
            await self._store.create_segment(name, is_table=True)
            self._remember(name, TableIndex())

    async def delete_table(self, name: str, must_be_empty: bool) -> None:
        async with self._lock(name):
            table = await self._loaded(name)
            if must_be_empty and table.index:
                raise TableSegmentNotEmptyError(f"table segment {name} holds {len(table.index)} entries")
            self._tables.pop(name, None)
            await self._store.delete(name)

    def forget(self, name: str) -> None:
        """Drop the cached index of ``name`` (the segment was deleted, merged or changed behind our back)."""
        self._tables.pop(name, None)

    def forget_where(self, predicate: Callable[[str], bool]) -> None:
        """Drop the cached index of every table whose name satisfies ``predicate`` (their container stopped or
        started here: another segment store may have changed them meanwhile), including loads under way."""
        self._invalidations += 1
        for name in [name for name in self._tables if predicate(name)]:
            del self._tables[name]

    # --- changes -----------------------------------------------------------------------------

    async def update(
        self, name: str, entries: Sequence[tuple[bytes, bytes, int]], table_segment_offset: int
    ) -> list[int]:
        """Put (key, value, version) entries; returns the new versions in request order.

        Updates of one table that arrive while it is busy are grouped: each is checked on its own (against the
        index and the updates grouped before it), and all that pass are written in one append, so concurrent
        updates of a hot table (a scope's stream index) share one Tier-1 write. Each update stays all-or-nothing.
        An update conditional on the segment's length (``table_segment_offset``) is never grouped."""
        for key, value, _ in entries:
            check_key(key)
            check_value(value)
        if table_segment_offset != NULL_TABLE_SEGMENT_OFFSET:
            return await self._update_at(name, entries, table_segment_offset)
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        queue = self._grouped.get(name)
        if queue is None:
            queue = self._grouped[name] = []
            self._drains[name] = asyncio.create_task(self._drain(name, queue))
        queue.append((entries, future))
        return await future

    async def _drain(self, name: str, queue: list[_Grouped]) -> None:
        """Write the grouped updates of ``name`` until none is left (one task per busy table)."""
        group: list[_Grouped] = []
        try:
            async with self._lock(name):
                while queue:
                    group = _take_group(queue)
                    try:
                        await self._write_group(name, group)
                    except Exception as exc:
                        for _, future in group:
                            if not future.done():
                                future.set_exception(exc)
                del self._grouped[name]
        finally:
            if self._grouped.get(name) is queue:
                del self._grouped[name]
            if self._drains.get(name) is asyncio.current_task():
                del self._drains[name]
            for _, future in [*group, *queue]:
                if not future.done():
                    future.set_exception(SegmentStoreError(name, f"table segment {name} is closing"))

    async def _write_group(self, name: str, group: list[_Grouped]) -> None:
        for attempt in range(2):
            table = await self._loaded(name)
            touched: dict[bytes, bool] = {}
            passed: list[_Grouped] = []
            records: list[tuple[RecordKind, bytes, bytes]] = []
            for entries, future in group:
                if future.done():
                    continue
                try:
                    self._check_grouped(name, table, touched, entries)
                except TableError as exc:
                    future.set_exception(exc)
                    continue
                passed.append((entries, future))
                for key, value, _ in entries:
                    touched[key] = True
                    records.append((RecordKind.PUT, key, value))
            if not records:  # nothing passed, or only updates with no entries: nothing to write
                for _, future in passed:
                    if not future.done():
                        future.set_result([])
                return
            try:
                versions = await self._append(name, table, records)
            except BadOffsetError:
                self._stale(name, attempt)
                continue
            self._schedule_compaction(name, table)
            position = 0
            for entries, future in passed:
                if not future.done():
                    future.set_result(versions[position : position + len(entries)])
                position += len(entries)
            return

    def _check_grouped(self, name: str, table: TableIndex, touched: dict[bytes, bool],
                       entries: Sequence[tuple[bytes, bytes, int]]) -> None:
        """Check an update's versions against the index, as if the updates grouped before it were applied."""
        for key, _, version in entries:
            if version == NO_VERSION:
                continue
            if key in touched:
                if version == NOT_EXISTS:
                    raise TableKeyBadVersionError(f"key {key!r} of table {name} exists (just written)")
                raise TableKeyBadVersionError(f"key {key!r} of table {name} was just written; version {version} "
                                              f"is stale")
            self._check_versions(name, table, [(key, version)])

    async def _update_at(
        self, name: str, entries: Sequence[tuple[bytes, bytes, int]], table_segment_offset: int
    ) -> list[int]:
        """An update conditional on the table segment's length (alone, under the table's lock)."""
        conditional = any(version != NO_VERSION for _, _, version in entries)
        async with self._lock(name):
            for attempt in range(2):
                table = await self._loaded(name)
                self._check_offset(name, table, table_segment_offset)
                if conditional:
                    self._check_versions(name, table, [(key, version) for key, _, version in entries])
                records = [(RecordKind.PUT, key, value) for key, value, _ in entries]
                try:
                    versions = await self._append(name, table, records)
                except BadOffsetError:
                    self._stale(name, attempt)
                    continue
                self._schedule_compaction(name, table)
                return versions
        raise AssertionError("unreachable")

    async def remove(self, name: str, keys: Sequence[tuple[bytes, int]], table_segment_offset: int) -> None:
        """Remove keys; an unconditional removal of an absent key is a no-op."""
        for key, _ in keys:
            check_key(key)
        conditional = any(version != NO_VERSION for _, version in keys)
        async with self._lock(name):
            for attempt in range(2):
                table = await self._loaded(name)
                self._check_offset(name, table, table_segment_offset)
                if conditional:
                    self._check_versions(name, table, keys)
                records = [(RecordKind.REMOVE, key, b"") for key, _ in keys if key in table.index]
                if not records:
                    return
                try:
                    await self._append(name, table, records)
                except BadOffsetError:
                    self._stale(name, attempt)
                    continue
                self._schedule_compaction(name, table)
                return

    def _stale(self, name: str, attempt: int) -> None:
        """The segment grew behind the index (someone appended directly): reload once, then give up."""
        self._tables.pop(name, None)
        if attempt:
            raise BadOffsetError(name, -1, f"table segment {name} keeps changing outside the table store")
        log.warning("table segment %s changed outside the table store; reloading its index", name)

    @staticmethod
    def _check_offset(name: str, table: TableIndex, table_segment_offset: int) -> None:
        if table_segment_offset != NULL_TABLE_SEGMENT_OFFSET and table.length != table_segment_offset:
            raise BadOffsetError(
                name, table.length, f"table segment length is {table.length}, not {table_segment_offset}"
            )

    @staticmethod
    def _check_versions(name: str, table: TableIndex, keys: Sequence[tuple[bytes, int]]) -> None:
        for key, version in keys:
            if version == NO_VERSION:
                continue
            current = table.index.get(key)
            if version == NOT_EXISTS:
                if current is not None:
                    raise TableKeyBadVersionError(f"key {key!r} of table {name} exists (version {current[0]})")
            elif current is None:
                raise TableKeyDoesNotExistError(f"key {key!r} of table {name} does not exist")
            elif current[0] != version:
                raise TableKeyBadVersionError(
                    f"key {key!r} of table {name} has version {current[0]}, not {version}"
                )

    async def _append(self, name: str, table: TableIndex, records: list[tuple[RecordKind, bytes, bytes]]) -> list[int]:
        batch_offset = table.length
        data, offsets = encode_batch(records, batch_offset)
        result = await self._store.append(name, data, expected_offset=batch_offset)
        table.apply(
            [Record(kind, key, value, offset) for (kind, key, value), offset in zip(records, offsets, strict=True)],
            batch_offset,
            result.new_length,
        )
        return offsets

    # --- queries -----------------------------------------------------------------------------

    async def get(self, name: str, keys: Sequence[bytes]) -> list[tuple[int, bytes] | None]:
        """(version, value) of each key, None where absent."""
        table = await self._loaded_locked(name)
        return [table.index.get(key) for key in keys]

    async def iterate_entries(
        self, name: str, token: bytes, count: int
    ) -> tuple[list[tuple[bytes, int, bytes]], bytes]:
        """A page of live entries (key, version, value) after ``token`` (b"" = start), and the next token."""
        table = await self._loaded_locked(name)
        keys = table.keys_in_order()
        start = 0
        if token:
            if not token.startswith(_TOKEN_PREFIX):
                raise TableArgumentError(f"invalid continuation token for table {name}")
            start = bisect.bisect_right(keys, token[len(_TOKEN_PREFIX) :])
        page: list[tuple[bytes, int, bytes]] = []
        size = 0
        for key in keys[start:]:
            if len(page) >= max(1, count) or size >= PAGE_BYTES:
                break
            version, value = table.index[key]
            page.append((key, version, value))
            size += len(key) + len(value) + 24
        next_token = _TOKEN_PREFIX + page[-1][0] if page else token
        return page, next_token

    async def iterate_keys(self, name: str, token: bytes, count: int) -> tuple[list[tuple[bytes, int]], bytes]:
        page, next_token = await self.iterate_entries(name, token, count)
        return [(key, version) for key, version, _ in page], next_token

    async def info(self, name: str) -> TableInfo:
        table = await self._loaded_locked(name)
        return TableInfo(table.start_offset, table.length, len(table.index))

    async def read_delta(self, name: str, from_position: int, count: int) -> DeltaRead:
        """Live entries written at or after ``from_position``; from below the start offset (compacted away) the
        reply says ``should_clear`` and scans from the start offset."""
        for attempt in range(3):
            table = await self._loaded_locked(name)
            if (await self._store.get_info(name)).length < table.length:
                self._stale(name, attempt)  # deleted and re-created behind the table store's back
                continue
            try:
                return await self._read_delta(name, table, from_position, count)
            except SegmentTruncatedError:
                if attempt == 2:
                    raise
                async with self._lock(name):
                    pass  # a compaction truncated the window being scanned: once it is done, scan again
        raise AssertionError("unreachable")

    async def _read_delta(self, name: str, table: TableIndex, from_position: int, count: int) -> DeltaRead:
        length = table.length
        if from_position < 0 or from_position > length:
            raise TableArgumentError(
                f"delta position {from_position} is outside table segment {name} (length {length})"
            )
        should_clear = from_position < table.start_offset
        from_position = max(from_position, table.start_offset)
        if from_position == length:
            return DeltaRead([], should_clear, True, length)
        first = bisect.bisect_right(table.batch_starts, from_position) - 1
        if first >= 0:
            scan_from = table.batch_starts[first]
        else:  # before the first batch, or no valid batch at all (only quarantined bytes)
            scan_from = table.batch_starts[0] if table.batch_starts else table.start_offset
        found: dict[bytes, tuple[int, bytes]] = {}
        size = 0
        last_position = from_position
        limit = max(1, count)
        async for _, batch_end, records in self._scan(name, scan_from, length):
            for record in records:
                if record.offset < from_position:
                    continue
                if record.kind is RecordKind.PUT:
                    found.pop(record.key, None)
                    found[record.key] = (record.offset, record.value)
                    size += len(record.key) + len(record.value)
                else:
                    found.pop(record.key, None)
                last_position = record_end(record)
                if len(found) >= limit or size >= PAGE_BYTES:
                    break
            else:
                last_position = batch_end
                continue
            break
        else:
            last_position = length  # scanned to the end (quarantined bytes after the last batch included)
        entries = [(key, version, value) for key, (version, value) in found.items()]
        return DeltaRead(entries, should_clear, last_position >= length, last_position)

    # --- compaction --------------------------------------------------------------------------

    async def compact(self, name: str) -> bool:
        """Compact ``name`` while its policy asks for it; True if the start offset moved. A sweep stops at the
        log's end as it was when the sweep began (what it copied is not copied again); another sweep follows
        only if the last one made the log smaller, so this always ends."""
        table = await self._loaded_locked(name)
        moved = False
        while True:
            sweep_end, size = table.length, table.length - table.start_offset
            while table.start_offset < sweep_end and self._needs_compaction(table):
                if not await self._compact_window(name, table):
                    return moved
                moved = True
            if not self._needs_compaction(table) or table.length - table.start_offset >= size:
                return moved

    async def wait_for_compactions(self) -> None:
        """Wait until no background compaction runs (tests; before closing the segment store)."""
        while tasks := [task for task in self._compactions.values() if not task.done()]:
            await asyncio.wait(tasks)

    async def close(self) -> None:
        """Stop background compactions (an interrupted compaction loses nothing) and grouped updates not yet
        written (they fail)."""
        tasks = [*self._compactions.values(), *self._drains.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._compactions.clear()

    def _needs_compaction(self, table: TableIndex) -> bool:
        return self.compaction.needed(table.start_offset, table.length, table.live_bytes)

    def _schedule_compaction(self, name: str, table: TableIndex) -> None:
        if not self._needs_compaction(table):
            return
        running = self._compactions.get(name)
        if running is None or running.done():
            self._compactions[name] = asyncio.create_task(self._compact_in_background(name))

    async def _compact_in_background(self, name: str) -> None:
        try:
            await self.compact(name)
        except SegmentStoreError as exc:
            log.info("compaction of table segment %s stopped: %s", name, exc)
        except Exception:
            log.exception("compaction of table segment %s failed; it is retried after the next update", name)
        finally:
            if self._compactions.get(name) is asyncio.current_task():
                del self._compactions[name]

    async def _compact_window(self, name: str, table: TableIndex) -> bool:
        """One pass: copy the live entries of the oldest window to the tail, then truncate the window away."""
        start = table.start_offset
        end = self.compaction.window_end(start, table.length, table.batch_starts)
        try:
            puts = [
                record
                async for _, _, records in self._scan(name, start, end)
                for record in records
                if record.kind is RecordKind.PUT
            ]
        except SegmentTruncatedError:
            return False  # another compaction of this table (a direct compact() call) got there first
        async with self._lock(name):
            if self._tables.get(name) is not table or table.start_offset != start:
                return False
            live = [(RecordKind.PUT, r.key, r.value) for r in puts if table.index.get(r.key, (-1, b""))[0] == r.offset]
            if live:
                try:
                    await self._append(name, table, live)
                except BadOffsetError:
                    self._tables.pop(name, None)
                    return False
            await self._store.truncate(name, end)
            table.truncated(end)
        log.debug("compacted table segment %s: start offset %d -> %d, %d entries copied", name, start, end, len(live))
        return True

    # --- index -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lock(self, name: str) -> AsyncIterator[None]:
        """Hold the table's lock; the lock object lives only while someone holds or waits for it."""
        entry = self._locks.get(name)
        if entry is None:
            entry = self._locks[name] = _TableLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users and self._locks.get(name) is entry:
                del self._locks[name]

    @property
    def cached_tables(self) -> int:
        """How many table indexes are in memory now."""
        return len(self._tables)

    def _cached(self, name: str) -> TableIndex | None:
        table = self._tables.get(name)
        if table is not None:
            self._tables.move_to_end(name)
        return table

    def _remember(self, name: str, table: TableIndex) -> None:
        """Cache ``table`` as the most recently used; drop the least recently used idle ones beyond the limit."""
        self._tables[name] = table
        self._tables.move_to_end(name)
        skipped = 0
        while len(self._tables) > self.max_cached_tables and skipped < len(self._tables):
            oldest = next(iter(self._tables))
            if oldest == name or oldest in self._locks or oldest in self._compactions:
                skipped += 1  # in use: keep it, as recently used
                self._tables.move_to_end(oldest)
            else:
                del self._tables[oldest]

    async def _loaded_locked(self, name: str) -> TableIndex:
        table = self._cached(name)
        if table is not None:
            return table
        async with self._lock(name):
            return await self._loaded(name)

    async def _loaded(self, name: str) -> TableIndex:
        """The table's index, rebuilt from the segment if not cached; call with the table's lock held."""
        table = self._cached(name)
        if table is not None:
            return table
        invalidations = self._invalidations
        info = await self._store.get_info(name)
        table = TableIndex(start_offset=info.start_offset, length=info.start_offset)
        async for batch_offset, batch_end, records in self._scan(name, info.start_offset, info.length):
            table.apply(records, batch_offset, batch_end)
        table.length = info.length
        if invalidations == self._invalidations:
            self._remember(name, table)
        log.debug("loaded table segment %s: %d entries, length %d", name, len(table.index), table.length)
        return table

    async def _scan(self, name: str, start: int, end: int) -> AsyncIterator[tuple[int, int, list[Record]]]:
        """(batch offset, batch end offset, records) of every valid batch in [start, end) of the segment; bytes
        between valid batches are skipped and quarantined."""
        buffer = bytearray()
        buffer_offset = start
        read_offset = start
        while True:
            at_end = read_offset >= end
            position = 0
            while (step := _next_batch(buffer, position, buffer_offset, at_end)) is not None:
                size, records, problem = step
                batch_offset = buffer_offset + position
                if records is not None:
                    yield batch_offset, batch_offset + size, records
                else:
                    self._store.quarantine.report(name, batch_offset, size, problem)
                position += size
            del buffer[:position]
            buffer_offset += position
            if at_end:
                return
            # not kept in the block cache: the index built from these bytes holds every live value already (a
            # restart's sweep loading every stream's table would otherwise fill the cache with them)
            result = await self._store.read(name, read_offset, min(READ_CHUNK, end - read_offset),
                                            keep_in_cache=False)
            if not result.data:
                raise DataCorruptionError(f"table segment {name} returned no data at offset {read_offset}")
            buffer += result.data
            read_offset += len(result.data)


def _valid_batch(buffer: bytearray, position: int, segment_offset: int) -> tuple[int, list[Record]] | None:
    """(size, records) of the valid batch at ``position``; None if it is not one or not complete in ``buffer``."""
    try:
        size = batch_size(buffer, position)
        if size is None or position + size > len(buffer):
            return None
        return size, list(decode_batch(buffer, position, segment_offset))
    except DataCorruptionError:
        return None


def _next_batch(buffer: bytearray, position: int, buffer_offset: int,
                at_end: bool) -> tuple[int, list[Record] | None, str] | None:
    """The next step of a scan at ``buffer[position:]``: (size, records, "") for a valid batch, (size, None,
    reason) for bytes to skip up to the next valid batch, or None when more data is needed (or none is left)."""
    if position >= len(buffer):
        return None
    try:
        size = batch_size(buffer, position)
        if size is None or position + size > len(buffer):
            if not at_end:
                return None
            problem = "a batch is cut off by the end of the segment"
        else:
            return size, list(decode_batch(buffer, position, buffer_offset + position)), ""
    except DataCorruptionError as exc:
        problem = str(exc)
    candidate = buffer.find(_MAGIC_BYTES, position + 1)
    while candidate != -1:
        if _valid_batch(buffer, candidate, buffer_offset + candidate) is not None:
            return candidate - position, None, problem
        size_there = _declared_size(buffer, candidate)
        if not at_end and (size_there is None or candidate + size_there > len(buffer)):
            return None  # the candidate may complete with more data
        candidate = buffer.find(_MAGIC_BYTES, candidate + 1)
    if not at_end:
        return None
    return len(buffer) - position, None, problem


def _declared_size(buffer: bytearray, position: int) -> int | None:
    try:
        return batch_size(buffer, position)
    except DataCorruptionError:
        return None
