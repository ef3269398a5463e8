"""TableSegmentClient: versions, conditional updates mapped to typed errors, iteration, delta reads."""

from __future__ import annotations

import pytest
from client_read_fakes import FakeStore, router

from anabranch.client.errors import KeyDoesNotExistError, VersionConflictError
from anabranch.client.table_client import NOT_EXISTS, TableSegmentClient

TABLE = "sc/t_kvtable/0.#epoch.0"


async def test_versions_and_conditions() -> None:
    table = TableSegmentClient(router(FakeStore()), TABLE)
    assert await table.create() is True
    assert await table.create() is False
    v1 = await table.put(b"k", b"1", NOT_EXISTS)
    with pytest.raises(VersionConflictError):
        await table.put(b"k", b"x", NOT_EXISTS)
    v2 = await table.put(b"k", b"2", v1)
    assert v2 > v1
    with pytest.raises(VersionConflictError):
        await table.put(b"k", b"3", v1)
    with pytest.raises(KeyDoesNotExistError):
        await table.put(b"absent", b"3", 5)
    entry = await table.get(b"k")
    assert entry is not None and (entry.value, entry.version) == (b"2", v2)
    assert await table.get(b"absent") is None
    with pytest.raises(VersionConflictError):
        await table.remove(b"k", v1)
    await table.remove(b"k", v2)
    assert await table.get(b"k") is None
    assert await table.delete() is True
    assert await table.delete() is False


async def test_batch_is_atomic() -> None:
    table = TableSegmentClient(router(FakeStore()), TABLE)
    await table.create()
    await table.put(b"a", b"1")
    with pytest.raises(VersionConflictError):
        await table.put_all([(b"b", b"1", NOT_EXISTS), (b"a", b"2", NOT_EXISTS)])
    assert await table.get(b"b") is None


async def test_iteration_and_delta() -> None:
    table = TableSegmentClient(router(FakeStore()), TABLE)
    await table.create()
    for i in range(25):
        await table.put(b"k%02d" % i, b"v%d" % i)
    keys = [k for page in [p async for p in table.iterate_keys(batch=10)] for k, _ in page]
    assert keys == [b"k%02d" % i for i in range(25)]
    entries = [e for page in [p async for p in table.iterate_entries(batch=7)] for e in page]
    assert [e.value for e in entries] == [b"v%d" % i for i in range(25)]
    delta = await table.read_delta(0, 10)
    assert len(delta.entries) == 10 and delta.last_position > 0
