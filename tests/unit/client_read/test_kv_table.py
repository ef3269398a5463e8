"""KeyValueTable over in-memory table segments: partitions, conditions, atomic batches, iteration."""

from __future__ import annotations

import pytest
from client_read_fakes import FakeStore, router

from anabranch.client.controller_client import KeyValueTableConfiguration
from anabranch.client.errors import KeyDoesNotExistError, VersionConflictError
from anabranch.client.hashing import SegmentWithRange
from anabranch.client.kv_table import NOT_EXISTS, BadKeyError, KeyValueTable, Put, TableKey
from anabranch.client.table_client import TableSegmentClient


class KvtController:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    async def get_key_value_table_configuration(self, scope: str, name: str) -> KeyValueTableConfiguration:
        return KeyValueTableConfiguration(self.partitions, 4, 2)

    async def get_key_value_table_segments(self, scope: str, name: str) -> list[SegmentWithRange]:
        n = self.partitions
        return [SegmentWithRange(scope, name, i, i / n, 1.0 if i == n - 1 else (i + 1) / n) for i in range(n)]


async def open_table(partitions: int = 3) -> tuple[FakeStore, KeyValueTable]:
    store = FakeStore()
    for i in range(partitions):
        await TableSegmentClient(router(store), f"sc/kvt_kvtable/{i}.#epoch.0").create()
    table = await KeyValueTable.open(KvtController(partitions), router(store), "sc", "kvt")  # type: ignore[arg-type]
    return store, table


def key(n: int, sub: int = 0) -> TableKey:
    return TableKey(n.to_bytes(4, "big"), sub.to_bytes(2, "big"))


async def test_put_get_conditions() -> None:
    _, table = await open_table()
    v1 = await table.put_if_absent(key(1), b"one")
    with pytest.raises(VersionConflictError):
        await table.put_if_absent(key(1), b"uno")
    v2 = await table.replace(key(1), b"ONE", v1)
    with pytest.raises(VersionConflictError):
        await table.replace(key(1), b"x", v1)
    with pytest.raises(KeyDoesNotExistError):
        await table.replace(key(2), b"x", v1)
    entry = await table.get(key(1))
    assert entry is not None and (entry.value, entry.version) == (b"ONE", v2)
    await table.remove(key(1), v2)
    assert await table.get(key(1)) is None
    with pytest.raises(BadKeyError):
        await table.put(TableKey(b"xx"), b"short key")


async def test_keys_spread_over_partitions_and_iterate() -> None:
    store, table = await open_table()
    for n in range(30):
        await table.put(key(n), b"%d" % n)
    sizes = [len(t.entries) for t in store.tables.values()]
    assert sum(sizes) == 30 and all(sizes)
    assert sorted([k async for k, _ in table.iterate_keys()]) == [key(n) for n in range(30)]
    assert sorted([e.value async for e in table.iterate_entries()]) == sorted(b"%d" % n for n in range(30))
    found = await table.get_all([key(3), key(99), key(7)])
    assert [e.value if e else None for e in found] == [b"3", None, b"7"]


async def test_batch_on_one_primary_key_is_atomic() -> None:
    _, table = await open_table()
    versions = await table.update_all([Put(key(5, 1), b"a", NOT_EXISTS), Put(key(5, 2), b"b", NOT_EXISTS)])
    assert len(versions) == 2
    with pytest.raises(VersionConflictError):
        await table.update_all([Put(key(5, 3), b"c", NOT_EXISTS), Put(key(5, 1), b"a2", versions[1])])
    assert await table.get(key(5, 3)) is None
    with pytest.raises(BadKeyError):
        await table.update_all([Put(key(5, 1), b"a"), Put(key(6, 1), b"b")])
    await table.remove_all([(key(5, 1), versions[0]), (key(5, 2), None)])
    assert await table.get_all([key(5, 1), key(5, 2)]) == [None, None]
