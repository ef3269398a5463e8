"""Where controller metadata lives: table segments under the ``_system`` scope on the segment store.

Layout (``T(...)`` = ``table_segment_name("_system", ...)``):

- ``T(scopes)``: scope → {}; ``T(deletedStreams)``: "scope/stream" → next segment number to use.
- ``T(scope, <scope>, streams|tags|readerGroups|kvTables)``: per-scope indexes (tags keyed by [tag, stream]).
- ``T(streams, <scope>, <stream>)``: one table per stream: ``config``, ``state``, ``epochs``
  ({active, latest, next}), ``epoch/<n>``, ``transition``, ``truncation``, ``txn/<hex>``,
  ``writer/<id>``, ``subscriber/<scope/rg>``.

Values are CBOR. Every write can be conditional on the version read (``WriteConflictError`` otherwise),
so concurrent or repeated workflows are safe. Epoch records never change once written, so they
are cached in memory for the ``EPOCH_CACHE_STREAMS`` most recently used streams (dropped with the stream);
everything else is read from the store. Nothing else is kept per stream, so an idle stream costs the controller
no memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

import cbor2

from anabranch.controller.epochs import EpochRecord
from anabranch.controller.errors import NoSuchSegmentError
from anabranch.controller.segment_helper import SegmentStoreOps, iterate_entries
from anabranch.model.names import SYSTEM_SCOPE, table_segment_name
from anabranch.protocol.commands import NO_VERSION, NOT_EXISTS

SCOPE_INDEXES = ("streams", "tags", "readerGroups", "kvTables")
EPOCH_CACHE_STREAMS = 4096
"""Streams whose epoch records stay cached (least recently used beyond it are dropped, read again on demand)."""


class Table:
    """A table segment holding CBOR values under string (or CBOR-encoded) keys."""

    def __init__(self, ops: SegmentStoreOps, name: str) -> None:
        self.ops = ops
        self.name = name

    async def create(self) -> bool:
        """Create the table; False if it exists already."""
        return await self.ops.create_table(self.name)

    async def delete(self, must_be_empty: bool = False) -> None:
        await self.ops.delete_table(self.name, must_be_empty)

    @staticmethod
    def _key(key: str | bytes) -> bytes:
        return key.encode() if isinstance(key, str) else key

    async def get(self, key: str | bytes) -> tuple[Any, int] | None:
        (found,) = await self.ops.read_table(self.name, [self._key(key)])
        return None if found is None else (cbor2.loads(found[0]), found[1])

    async def get_many(self, keys: Sequence[str]) -> list[tuple[Any, int] | None]:
        found = await self.ops.read_table(self.name, [self._key(k) for k in keys])
        return [None if f is None else (cbor2.loads(f[0]), f[1]) for f in found]

    async def get_value(self, key: str | bytes) -> Any:
        found = await self.get(key)
        return None if found is None else found[0]

    async def put(self, key: str | bytes, value: Any, version: int = NO_VERSION) -> int:
        (new,) = await self.ops.update_table(self.name, [(self._key(key), cbor2.dumps(value), version)])
        return new

    async def put_many(self, items: Sequence[tuple[str | bytes, Any, int]]) -> list[int]:
        return await self.ops.update_table(
            self.name, [(self._key(k), cbor2.dumps(v), ver) for k, v, ver in items])

    async def insert(self, key: str | bytes, value: Any) -> int:
        """Add a key that must not exist yet (``WriteConflictError`` if it does)."""
        return await self.put(key, value, NOT_EXISTS)

    async def remove(self, key: str | bytes, version: int = NO_VERSION) -> None:
        await self.ops.remove_keys(self.name, [(self._key(key), version)])

    async def items(self) -> AsyncIterator[tuple[bytes, Any, int]]:
        async for key, value, version in iterate_entries(self.ops, self.name):
            yield key, cbor2.loads(value), version

    async def page(self, token: bytes, count: int) -> tuple[list[tuple[bytes, Any]], bytes]:
        entries, token = await self.ops.read_entries(self.name, token, count)
        return [(k, cbor2.loads(v)) for k, v, _ in entries], token

    async def is_empty(self) -> bool:
        entries, _ = await self.ops.read_entries(self.name, b"", 1)
        return not entries


class MetadataStore:
    """Typed access to the controller's tables; no workflow logic."""

    def __init__(self, ops: SegmentStoreOps) -> None:
        self.ops = ops
        self.scopes = Table(ops, table_segment_name(SYSTEM_SCOPE, "scopes"))
        self.deleted_streams = Table(ops, table_segment_name(SYSTEM_SCOPE, "deletedStreams"))
        self._epochs: OrderedDict[tuple[str, str], dict[int, EpochRecord]] = OrderedDict()

    async def bootstrap(self) -> None:
        await self.scopes.create()
        await self.deleted_streams.create()

    def scope_index(self, scope: str, index: str) -> Table:
        return Table(self.ops, table_segment_name(SYSTEM_SCOPE, "scope", scope, index))

    async def user_streams(self) -> AsyncIterator[tuple[str, str]]:
        """(scope, stream) of every stream outside the system scope; internal ``_`` streams are left out."""
        async for scope_key, _value, _version in self.scopes.items():
            scope = scope_key.decode()
            if scope == SYSTEM_SCOPE:
                continue
            try:  # page by page, as the caller goes (no list of a scope's streams in memory)
                async for key, _v, _ver in self.scope_index(scope, "streams").items():
                    stream = key.decode()
                    if not stream.startswith("_"):
                        yield scope, stream
            except NoSuchSegmentError:
                continue

    def stream_table(self, scope: str, stream: str) -> Table:
        return Table(self.ops, table_segment_name(SYSTEM_SCOPE, "streams", scope, stream))

    async def scope_exists(self, scope: str) -> bool:
        return await self.scopes.get(scope) is not None

    async def stream_exists(self, scope: str, stream: str) -> bool:
        try:
            return await self.stream_table(scope, stream).get("config") is not None
        except NoSuchSegmentError:
            return False

    async def epoch(self, scope: str, stream: str, epoch: int) -> EpochRecord | None:
        cached = self._epochs.get((scope, stream))
        if cached is not None:
            self._epochs.move_to_end((scope, stream))
            record = cached.get(epoch)
            if record is not None:
                return record
        raw = await self.stream_table(scope, stream).get_value(f"epoch/{epoch}")
        if raw is None:
            return None
        record = EpochRecord.decode(raw)
        self.remember_epoch(scope, stream, epoch, record)
        return record

    def remember_epoch(self, scope: str, stream: str, epoch: int, record: EpochRecord) -> None:
        """Cache an epoch record just written (records never change, so the cache cannot go stale)."""
        key = (scope, stream)
        cached = self._epochs.get(key)
        if cached is None:
            cached = self._epochs[key] = {}
        self._epochs.move_to_end(key)
        cached[epoch] = record
        while len(self._epochs) > EPOCH_CACHE_STREAMS:
            self._epochs.popitem(last=False)

    @property
    def cached_epoch_streams(self) -> int:
        return len(self._epochs)

    async def epochs(self, scope: str, stream: str, first: int, last: int) -> list[EpochRecord]:
        records = []
        for n in range(first, last + 1):
            record = await self.epoch(scope, stream, n)
            if record is not None:
                records.append(record)
        return records

    def forget_stream(self, scope: str, stream: str) -> None:
        self._epochs.pop((scope, stream), None)
