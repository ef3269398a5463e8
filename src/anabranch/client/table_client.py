"""A client for one table segment on the segment store: a versioned key → value map.

Every key carries a version (the server assigns a new one on each update). Writes can be
unconditional (``NO_VERSION``), require the key to be absent (``NOT_EXISTS``) or to have an exact
version; a batch of conditional writes is atomic. Error replies map to the typed errors of
:mod:`anabranch.client.errors` (``VersionConflictError``, ``KeyDoesNotExistError``, ...).

Iteration uses the server's continuation tokens and stops at the first empty page; the delta read
follows ``last_position`` until a reply has no entries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from anabranch.client.errors import error_from_reply
from anabranch.client.segment_reader import SegmentRouter
from anabranch.protocol.commands import (
    NO_VERSION,
    NOT_EXISTS,
    CreateTableSegment,
    DeleteTableSegment,
    GetTableSegmentInfo,
    NoSuchSegment,
    ReadTable,
    ReadTableEntries,
    ReadTableEntriesDelta,
    ReadTableKeys,
    RemoveTableKeys,
    Reply,
    SegmentAlreadyExists,
    SegmentCreated,
    SegmentDeleted,
    TableEntriesDeltaRead,
    TableEntriesRead,
    TableEntriesUpdated,
    TableEntry,
    TableIteratorArgs,
    TableKey,
    TableKeysRead,
    TableKeysRemoved,
    TableRead,
    TableSegmentInfo,
    UpdateTableEntries,
)

__all__ = ["NOT_EXISTS", "NO_VERSION", "DeltaRead", "TableSegmentClient", "VersionedEntry"]

ITERATION_BATCH = 100


@dataclass(frozen=True, slots=True)
class VersionedEntry:
    key: bytes
    value: bytes
    version: int


@dataclass(frozen=True, slots=True)
class DeltaRead:
    entries: list[VersionedEntry]
    last_position: int
    should_clear: bool
    reached_end: bool


class TableSegmentClient:
    """Operations on the table segment ``segment`` (e.g. ``scope/name_kvtable/0.#epoch.0``)."""

    def __init__(self, router: SegmentRouter, segment: str) -> None:
        self.router = router
        self.segment = segment

    @property
    def _token(self) -> str:
        return self.router.delegation_token

    def _fail(self, reply: Reply, what: str) -> Exception:
        return error_from_reply(reply, f"{what} on table {self.segment}")

    async def create(self) -> bool:
        """True if created, False if it already existed."""
        reply = await self.router.request(self.segment, lambda rid: CreateTableSegment(rid, self.segment, self._token))
        if isinstance(reply, SegmentCreated):
            return True
        if isinstance(reply, SegmentAlreadyExists):
            return False
        raise self._fail(reply, "create")

    async def delete(self, must_be_empty: bool = False) -> bool:
        """True if deleted, False if it did not exist."""
        reply = await self.router.request(
            self.segment, lambda rid: DeleteTableSegment(rid, self.segment, must_be_empty, self._token)
        )
        if isinstance(reply, SegmentDeleted):
            return True
        if isinstance(reply, NoSuchSegment):
            return False
        raise self._fail(reply, "delete")

    async def info(self) -> TableSegmentInfo:
        reply = await self.router.request(self.segment, lambda rid: GetTableSegmentInfo(rid, self.segment, self._token))
        if isinstance(reply, TableSegmentInfo):
            return reply
        raise self._fail(reply, "info")

    async def put_all(self, entries: Sequence[tuple[bytes, bytes, int]], table_offset: int = -1) -> list[int]:
        """Writes ``(key, value, expected_version)`` triples atomically; returns the new versions in order."""
        wire = tuple(TableEntry(TableKey(k, v), value) for k, value, v in entries)
        reply = await self.router.request(
            self.segment, lambda rid: UpdateTableEntries(rid, self.segment, self._token, wire, table_offset)
        )
        if isinstance(reply, TableEntriesUpdated):
            if len(reply.updated_versions) != len(wire):
                count = len(reply.updated_versions)
                raise self._fail(reply, f"update of {len(wire)} keys answered with {count} versions")
            return list(reply.updated_versions)
        raise self._fail(reply, "update")

    async def put(self, key: bytes, value: bytes, version: int = NO_VERSION) -> int:
        """Writes one key; ``version`` is NO_VERSION (unconditional), NOT_EXISTS, or the version it must have."""
        return (await self.put_all([(key, value, version)]))[0]

    async def remove_all(self, keys: Sequence[tuple[bytes, int]]) -> None:
        """Removes ``(key, expected_version)`` pairs atomically (NO_VERSION: unconditional)."""
        wire = tuple(TableKey(k, v) for k, v in keys)
        reply = await self.router.request(
            self.segment, lambda rid: RemoveTableKeys(rid, self.segment, self._token, wire)
        )
        if not isinstance(reply, TableKeysRemoved):
            raise self._fail(reply, "remove")

    async def remove(self, key: bytes, version: int = NO_VERSION) -> None:
        await self.remove_all([(key, version)])

    async def get_all(self, keys: Iterable[bytes]) -> list[VersionedEntry | None]:
        """The entries of ``keys`` in order; None for a key that is absent."""
        wire = tuple(TableKey(k) for k in keys)
        if not wire:
            return []
        reply = await self.router.request(self.segment, lambda rid: ReadTable(rid, self.segment, self._token, wire))
        if not isinstance(reply, TableRead):
            raise self._fail(reply, "read")
        return [
            None if e.key.version < 0 else VersionedEntry(e.key.key, e.value, e.key.version)
            for e in reply.entries
        ]

    async def get(self, key: bytes) -> VersionedEntry | None:
        return (await self.get_all([key]))[0]

    def _read_keys(self, batch: int, args: TableIteratorArgs, request_id: int) -> ReadTableKeys:
        return ReadTableKeys(request_id, self.segment, self._token, batch, args)

    def _read_entries(self, batch: int, args: TableIteratorArgs, request_id: int) -> ReadTableEntries:
        return ReadTableEntries(request_id, self.segment, self._token, batch, args)

    async def iterate_keys(self, batch: int = ITERATION_BATCH) -> AsyncIterator[list[tuple[bytes, int]]]:
        """Pages of ``(key, version)`` until the table is exhausted."""
        token = b""
        while True:
            args = TableIteratorArgs(continuation_token=token)
            reply = await self.router.request(self.segment, partial(self._read_keys, batch, args))
            if not isinstance(reply, TableKeysRead):
                raise self._fail(reply, "iterate keys")
            if not reply.keys:
                return
            yield [(k.key, k.version) for k in reply.keys]
            token = reply.continuation_token

    async def iterate_entries(self, batch: int = ITERATION_BATCH) -> AsyncIterator[list[VersionedEntry]]:
        """Pages of entries until the table is exhausted."""
        token = b""
        while True:
            args = TableIteratorArgs(continuation_token=token)
            reply = await self.router.request(self.segment, partial(self._read_entries, batch, args))
            if not isinstance(reply, TableEntriesRead):
                raise self._fail(reply, "iterate entries")
            if not reply.entries:
                return
            yield [VersionedEntry(e.key.key, e.value, e.key.version) for e in reply.entries]
            token = reply.continuation_token

    async def read_delta(self, from_position: int, count: int = ITERATION_BATCH) -> DeltaRead:
        """Entries changed since ``from_position`` (a log position, 0 = the beginning)."""
        reply = await self.router.request(
            self.segment, lambda rid: ReadTableEntriesDelta(rid, self.segment, self._token, from_position, count)
        )
        if not isinstance(reply, TableEntriesDeltaRead):
            raise self._fail(reply, "read delta")
        entries = [VersionedEntry(e.key.key, e.value, e.key.version) for e in reply.entries]
        return DeltaRead(entries, reply.last_position, reply.should_clear, reply.reached_end)
