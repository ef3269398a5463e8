"""``KeyValueTable``: a key-value table created by the controller, spread over several table segments.

A key is a primary key plus an optional secondary key; both have the fixed lengths given when the table
was created (the controller creates the table segments ``<scope>/<kvt>_kvtable/<n>.#epoch.0`` with that key
length). The primary key picks the partition: murmur3-64 of its bytes mapped to [0, 1) and looked up in the
partitions' key ranges, so every key sharing a primary key lives in one table segment, and
``update_all``/``remove_all`` on such keys are atomic (one conditional UpdateTableEntries / RemoveTableKeys).

Versions are the table segment's entry versions: ``put_if_absent`` requires absence, ``replace`` and
``remove`` with a version require that exact version; a failed condition raises ``VersionConflictError``
or ``KeyDoesNotExistError``.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import mmh3

from anabranch.client.controller_client import ControllerClient, KeyValueTableConfiguration
from anabranch.client.errors import ClientError
from anabranch.client.hashing import u64_to_fraction
from anabranch.client.segment_reader import SegmentRouter
from anabranch.client.table_client import ITERATION_BATCH, NO_VERSION, NOT_EXISTS, TableSegmentClient
from anabranch.model.names import KVTABLE_SUFFIX, qualified_segment_name

KVT_SEED = 1741865571


class BadKeyError(ClientError, ValueError):
    """A key does not have the table's fixed primary/secondary key lengths, or a batch spans primary keys."""


@dataclass(frozen=True, slots=True, order=True)
class TableKey:
    primary: bytes
    secondary: bytes = b""

    @property
    def raw(self) -> bytes:
        return self.primary + self.secondary


@dataclass(frozen=True, slots=True)
class TableEntry:
    key: TableKey
    value: bytes
    version: int


@dataclass(frozen=True, slots=True)
class Put:
    """One write of a batch: ``version`` None = unconditional, NOT_EXISTS = must be absent, else exact."""

    key: TableKey
    value: bytes
    version: int | None = None


def key_position(primary: bytes) -> float:
    upper, _ = mmh3.hash64(primary, KVT_SEED, signed=False)
    return u64_to_fraction(upper)


class KeyValueTable:
    """Typed operations on one key-value table. Create it with ``KeyValueTable.open``."""

    def __init__(self, scope: str, name: str, config: KeyValueTableConfiguration, bounds: Sequence[float],
                 partitions: Sequence[TableSegmentClient]) -> None:
        self.scope = scope
        self.name = name
        self.config = config
        self._bounds = list(bounds)
        """Upper bound of each partition's key range, ascending."""
        self._partitions = list(partitions)

    @classmethod
    async def open(cls, controller: ControllerClient, router: SegmentRouter, scope: str,
                   name: str) -> KeyValueTable:
        config = await controller.get_key_value_table_configuration(scope, name)
        segments = sorted(await controller.get_key_value_table_segments(scope, name), key=lambda s: s.max_key)
        partitions = [
            TableSegmentClient(router, qualified_segment_name(scope, name + KVTABLE_SUFFIX, s.segment_id))
            for s in segments
        ]
        return cls(scope, name, config, [s.max_key for s in segments], partitions)

    def _check(self, key: TableKey) -> None:
        config = self.config
        if len(key.primary) != config.primary_key_length or len(key.secondary) != config.secondary_key_length:
            raise BadKeyError(
                f"keys of {self.scope}/{self.name} have a {self.config.primary_key_length}-byte primary and a "
                f"{self.config.secondary_key_length}-byte secondary part; got {len(key.primary)} and "
                f"{len(key.secondary)} bytes"
            )

    def partition_of(self, key: TableKey) -> TableSegmentClient:
        self._check(key)
        index = bisect.bisect_right(self._bounds, key_position(key.primary))
        return self._partitions[min(index, len(self._partitions) - 1)]

    def _same_partition(self, keys: Sequence[TableKey]) -> TableSegmentClient:
        if len({k.primary for k in keys}) != 1:
            raise BadKeyError("a batch must touch exactly one primary key (one partition) to be atomic")
        return self.partition_of(keys[0])

    async def put(self, key: TableKey, value: bytes) -> int:
        """Unconditional write; returns the new version."""
        return await self.partition_of(key).put(key.raw, value, NO_VERSION)

    async def put_if_absent(self, key: TableKey, value: bytes) -> int:
        """Writes only if the key is absent (else ``VersionConflictError``)."""
        return await self.partition_of(key).put(key.raw, value, NOT_EXISTS)

    async def replace(self, key: TableKey, value: bytes, version: int) -> int:
        """Writes only if the key has ``version`` (else ``VersionConflictError``/``KeyDoesNotExistError``)."""
        return await self.partition_of(key).put(key.raw, value, version)

    async def update_all(self, puts: Sequence[Put]) -> list[int]:
        """Atomic conditional batch on keys that share one primary key; the new versions in order."""
        if not puts:
            return []
        for put in puts:
            self._check(put.key)
        partition = self._same_partition([p.key for p in puts])
        return await partition.put_all(
            [(p.key.raw, p.value, NO_VERSION if p.version is None else p.version) for p in puts]
        )

    async def remove(self, key: TableKey, version: int | None = None) -> None:
        await self.partition_of(key).remove(key.raw, NO_VERSION if version is None else version)

    async def remove_all(self, keys: Sequence[tuple[TableKey, int | None]]) -> None:
        """Atomic removal of keys sharing one primary key (each with an optional expected version)."""
        if not keys:
            return
        partition = self._same_partition([k for k, _ in keys])
        await partition.remove_all([(k.raw, NO_VERSION if v is None else v) for k, v in keys])

    async def get(self, key: TableKey) -> TableEntry | None:
        found = await self.partition_of(key).get(key.raw)
        return None if found is None else TableEntry(key, found.value, found.version)

    async def get_all(self, keys: Sequence[TableKey]) -> list[TableEntry | None]:
        """Entries of ``keys`` in order (None for absent ones); one request per partition touched."""
        by_partition: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            by_partition.setdefault(id(self.partition_of(key)), []).append(i)
        result: list[TableEntry | None] = [None] * len(keys)
        for indexes in by_partition.values():
            partition = self.partition_of(keys[indexes[0]])
            found = await partition.get_all([keys[i].raw for i in indexes])
            for i, entry in zip(indexes, found, strict=True):
                if entry is not None:
                    result[i] = TableEntry(keys[i], entry.value, entry.version)
        return result

    def _split(self, raw: bytes) -> TableKey:
        cut = self.config.primary_key_length
        return TableKey(raw[:cut], raw[cut:])

    def _selected(self, primary_key: bytes | None, secondary_prefix: bytes, from_secondary: bytes | None,
                  to_secondary: bytes | None) -> tuple[list[TableSegmentClient], Callable[[TableKey], bool]]:
        """The partitions to scan and the filter for a key family (one primary key) with an optional secondary
        prefix or inclusive secondary range; all partitions and no filter without a primary key."""
        if primary_key is None:
            if secondary_prefix or from_secondary is not None or to_secondary is not None:
                raise BadKeyError("a secondary-key prefix or range needs primary_key (one key family)")
            return self._partitions, lambda _key: True
        partition = self.partition_of(TableKey(primary_key, bytes(self.config.secondary_key_length)))

        def wanted(key: TableKey) -> bool:
            return (key.primary == primary_key and key.secondary.startswith(secondary_prefix)
                    and (from_secondary is None or key.secondary >= from_secondary)
                    and (to_secondary is None or key.secondary <= to_secondary))

        return [partition], wanted

    async def key_pages(self, *, primary_key: bytes | None = None, secondary_prefix: bytes = b"",
                        from_secondary: bytes | None = None, to_secondary: bytes | None = None,
                        page_size: int = ITERATION_BATCH) -> AsyncIterator[list[tuple[TableKey, int]]]:
        """Pages (at most ``page_size`` each) of ``(key, version)``: every key, or with ``primary_key`` the keys of
        that family, optionally only secondary keys starting with ``secondary_prefix`` or within the inclusive
        range ``from_secondary``..``to_secondary`` (Pravega's ``forPrimaryKey``/``forPrefix``). No global order."""
        partitions, wanted = self._selected(primary_key, secondary_prefix, from_secondary, to_secondary)
        page: list[tuple[TableKey, int]] = []
        for partition in partitions:
            async for batch in partition.iterate_keys(page_size):
                for raw, version in batch:
                    key = self._split(raw)
                    if wanted(key):
                        page.append((key, version))
                        if len(page) >= page_size:
                            yield page
                            page = []
        if page:
            yield page

    async def entry_pages(self, *, primary_key: bytes | None = None, secondary_prefix: bytes = b"",
                          from_secondary: bytes | None = None, to_secondary: bytes | None = None,
                          page_size: int = ITERATION_BATCH) -> AsyncIterator[list[TableEntry]]:
        """Pages of entries, selected as in ``key_pages``."""
        partitions, wanted = self._selected(primary_key, secondary_prefix, from_secondary, to_secondary)
        page: list[TableEntry] = []
        for partition in partitions:
            async for batch in partition.iterate_entries(page_size):
                for entry in batch:
                    key = self._split(entry.key)
                    if wanted(key):
                        page.append(TableEntry(key, entry.value, entry.version))
                        if len(page) >= page_size:
                            yield page
                            page = []
        if page:
            yield page

    async def iterate_keys(self, *, primary_key: bytes | None = None, secondary_prefix: bytes = b"",
                           from_secondary: bytes | None = None,
                           to_secondary: bytes | None = None) -> AsyncIterator[tuple[TableKey, int]]:
        """Every selected key with its version (see ``key_pages``), partition by partition (no global order)."""
        async for page in self.key_pages(primary_key=primary_key, secondary_prefix=secondary_prefix,
                                         from_secondary=from_secondary, to_secondary=to_secondary):
            for item in page:
                yield item

    async def iterate_entries(self, *, primary_key: bytes | None = None, secondary_prefix: bytes = b"",
                              from_secondary: bytes | None = None,
                              to_secondary: bytes | None = None) -> AsyncIterator[TableEntry]:
        """Every selected entry (see ``key_pages``), partition by partition (no global order)."""
        async for page in self.entry_pages(primary_key=primary_key, secondary_prefix=secondary_prefix,
                                           from_secondary=from_secondary, to_secondary=to_secondary):
            for entry in page:
                yield entry
