"""TableStore under many streams: concurrent updates of one table share appends but keep their own conditions;
only the most recently used table indexes stay in memory, and an evicted one is rebuilt from its segment."""

from __future__ import annotations

import asyncio

import pytest
from tables_fake_store import FakeSegmentStore

from anabranch.protocol.commands import NO_VERSION, NOT_EXISTS
from anabranch.segmentstore.tables import TableKeyBadVersionError, TableKeyDoesNotExistError, TableStore

T = "scope/_tables/t"


async def test_concurrent_updates_share_appends_and_each_is_all_or_nothing() -> None:
    store = FakeSegmentStore()
    tables = TableStore(store)  # type: ignore[arg-type]
    await tables.create_table(T)
    [base] = await tables.update(T, [(b"k", b"0", NO_VERSION)], -1)
    before = store.appends
    results = await asyncio.gather(
        *(tables.update(T, [(f"s{i}".encode(), b"v", NOT_EXISTS)], -1) for i in range(50)),
        tables.update(T, [(b"k", b"1", base)], -1),           # first to change k: passes
        tables.update(T, [(b"k", b"2", base)], -1),           # same version after k changed: refused
        tables.update(T, [(b"s0", b"dup", NOT_EXISTS), (b"x", b"1", NO_VERSION)], -1),  # s0 just written: refused
        tables.update(T, [(b"gone", b"1", 12345)], -1),       # conditional on a key that does not exist
        return_exceptions=True,
    )
    assert all(isinstance(r, list) and len(r) == 1 for r in results[:51])
    assert isinstance(results[51], TableKeyBadVersionError)
    assert isinstance(results[52], TableKeyBadVersionError)
    assert isinstance(results[53], TableKeyDoesNotExistError)
    assert store.appends - before < 10  # 51 accepted updates, a handful of appends
    versions = [r[0] for r in results[:51] if isinstance(r, list)]
    assert len(set(versions)) == 51
    assert await tables.get(T, [b"k", b"x", b"s0"]) == [(results[50][0], b"1"), None, (results[0][0], b"v")]  # type: ignore[index]
    # What the grouped appends wrote is what a fresh index rebuilt from the segment sees.
    reloaded = TableStore(store)  # type: ignore[arg-type]
    keys = [b"k", b"x", *(f"s{i}".encode() for i in range(50))]
    assert await reloaded.get(T, keys) == await tables.get(T, keys)


async def test_an_update_without_entries_is_answered_alone_or_grouped() -> None:
    store = FakeSegmentStore()
    tables = TableStore(store)  # type: ignore[arg-type]
    await tables.create_table(T)
    assert await tables.update(T, [], -1) == []
    empty, alone, put = await asyncio.gather(tables.update(T, [], -1), tables.update(T, [], -1),
                                             tables.update(T, [(b"a", b"1", NO_VERSION)], -1))
    assert empty == alone == [] and len(put) == 1


async def test_a_failing_append_fails_its_group_only() -> None:
    store = FakeSegmentStore()
    tables = TableStore(store)  # type: ignore[arg-type]
    await tables.create_table(T)
    await store.delete(T)  # the segment vanished behind the table store's back
    tables.forget(T)
    with pytest.raises(Exception, match=T):
        await tables.update(T, [(b"a", b"1", NO_VERSION)], -1)
    await tables.create_table(T)
    assert await tables.update(T, [(b"a", b"1", NOT_EXISTS)], -1)


async def test_only_recent_indexes_stay_cached_and_evicted_ones_reload() -> None:
    store = FakeSegmentStore()
    tables = TableStore(store, max_cached_tables=4)  # type: ignore[arg-type]
    versions = {}
    for i in range(20):
        name = f"{T}{i}"
        await tables.create_table(name)
        [versions[name]] = await tables.update(name, [(b"key", f"value{i}".encode(), NO_VERSION)], -1)
    assert tables.cached_tables == 4
    assert not tables._locks  # no lock outlives its request
    for i in range(20):  # the evicted ones are rebuilt from their segments, with the same versions
        name = f"{T}{i}"
        assert await tables.get(name, [b"key"]) == [(versions[name], f"value{i}".encode())]
        assert tables.cached_tables <= 4
    [newer] = await tables.update(f"{T}0", [(b"key", b"again", versions[f"{T}0"])], -1)
    assert newer > versions[f"{T}0"]
