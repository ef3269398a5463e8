"""TableStore against a dict model: versions, conditions, atomicity, iteration, deltas, index rebuild."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tables_fake_store import FakeSegmentStore

from anabranch.protocol.commands import NO_VERSION, NOT_EXISTS
from anabranch.segmentstore.errors import BadOffsetError, NoSuchSegmentError, SegmentExistsError
from anabranch.segmentstore.tables import (
    TableArgumentError,
    TableKeyBadVersionError,
    TableKeyDoesNotExistError,
    TableSegmentNotEmptyError,
    TableStore,
)
from anabranch.segmentstore.tables.table_index import MAX_KEY_LENGTH, MAX_VALUE_LENGTH

T = "scope/_tables/t"


async def make() -> tuple[FakeSegmentStore, TableStore]:
    store = FakeSegmentStore()
    tables = TableStore(store)  # type: ignore[arg-type]
    await tables.create_table(T)
    return store, tables


async def test_versions_are_increasing_offsets_and_survive_reload() -> None:
    store, tables = await make()
    v1 = await tables.update(T, [(b"a", b"1", NO_VERSION), (b"b", b"2", NO_VERSION)], -1)
    v2 = await tables.update(T, [(b"a", b"3", v1[0])], -1)
    assert v1[0] < v1[1] < v2[0]
    assert await tables.get(T, [b"a", b"b", b"c"]) == [(v2[0], b"3"), (v1[1], b"2"), None]
    reloaded = TableStore(store)  # type: ignore[arg-type]
    assert await reloaded.get(T, [b"a", b"b", b"c"]) == [(v2[0], b"3"), (v1[1], b"2"), None]
    assert (await reloaded.info(T)).entry_count == 2


async def test_conditional_update_is_all_or_nothing() -> None:
    store, tables = await make()
    [va] = await tables.update(T, [(b"a", b"1", NOT_EXISTS)], -1)
    with pytest.raises(TableKeyBadVersionError):
        await tables.update(T, [(b"b", b"x", NOT_EXISTS), (b"a", b"2", NOT_EXISTS)], -1)
    with pytest.raises(TableKeyDoesNotExistError):
        await tables.update(T, [(b"a", b"2", va), (b"zz", b"2", 5)], -1)
    with pytest.raises(TableKeyBadVersionError):
        await tables.update(T, [(b"a", b"2", va + 1)], -1)
    assert await tables.get(T, [b"a", b"b"]) == [(va, b"1"), None]
    assert store.appends == 1


async def test_table_segment_offset_condition() -> None:
    _store, tables = await make()
    await tables.update(T, [(b"a", b"1", NO_VERSION)], 0)
    length = (await tables.info(T)).length
    with pytest.raises(BadOffsetError) as info:
        await tables.update(T, [(b"a", b"2", NO_VERSION)], 0)
    assert info.value.offset == length
    await tables.update(T, [(b"a", b"2", NO_VERSION)], length)


async def test_remove_rules() -> None:
    _, tables = await make()
    [va] = await tables.update(T, [(b"a", b"1", NO_VERSION)], -1)
    await tables.remove(T, [(b"missing", NO_VERSION)], -1)
    with pytest.raises(TableKeyDoesNotExistError):
        await tables.remove(T, [(b"missing", 3)], -1)
    with pytest.raises(TableKeyBadVersionError):
        await tables.remove(T, [(b"a", va + 1)], -1)
    await tables.remove(T, [(b"a", va)], -1)
    assert await tables.get(T, [b"a"]) == [None]


async def test_limits_and_delete() -> None:
    store, tables = await make()
    with pytest.raises(TableArgumentError):
        await tables.update(T, [(b"k" * (MAX_KEY_LENGTH + 1), b"", NO_VERSION)], -1)
    with pytest.raises(TableArgumentError):
        await tables.update(T, [(b"", b"v", NO_VERSION)], -1)
    with pytest.raises(TableArgumentError):
        await tables.update(T, [(b"k", b"v" * (MAX_VALUE_LENGTH + 1), NO_VERSION)], -1)
    with pytest.raises(SegmentExistsError):
        await tables.create_table(T)
    await tables.update(T, [(b"a", b"1", NO_VERSION)], -1)
    with pytest.raises(TableSegmentNotEmptyError):
        await tables.delete_table(T, must_be_empty=True)
    await tables.delete_table(T, must_be_empty=False)
    assert T not in store.segments
    with pytest.raises(NoSuchSegmentError):
        await tables.get(T, [b"a"])


async def test_iteration_pages_cover_every_entry_once() -> None:
    _, tables = await make()
    for i in range(0, 50, 10):
        await tables.update(T, [(b"k%02d" % j, b"v%d" % j, NO_VERSION) for j in range(i, i + 10)], -1)
    seen: list[bytes] = []
    token = b""
    while True:
        page, token = await tables.iterate_entries(T, token, 7)
        if not page:
            break
        seen += [key for key, _, _ in page]
    assert seen == [b"k%02d" % j for j in range(50)]
    keys, _ = await tables.iterate_keys(T, b"", 1000)
    assert len(keys) == 50
    with pytest.raises(TableArgumentError):
        await tables.iterate_keys(T, b"bogus", 10)


async def test_read_delta_walks_the_log() -> None:
    _store, tables = await make()
    [v1, v2] = await tables.update(T, [(b"a", b"1", NO_VERSION), (b"b", b"1", NO_VERSION)], -1)
    [v3] = await tables.update(T, [(b"a", b"2", NO_VERSION)], -1)
    await tables.remove(T, [(b"b", NO_VERSION)], -1)
    length = (await tables.info(T)).length
    delta = await tables.read_delta(T, 0, 100)
    assert delta.entries == [(b"a", v3, b"2")]
    assert delta.reached_end and delta.last_position == length and not delta.should_clear
    first = await tables.read_delta(T, 0, 1)
    assert first.entries == [(b"a", v1, b"1")] and not first.reached_end
    second = await tables.read_delta(T, first.last_position, 1)
    assert second.entries == [(b"b", v2, b"1")] and second.last_position > first.last_position
    end = await tables.read_delta(T, length, 10)
    assert end.entries == [] and end.reached_end and end.last_position == length
    with pytest.raises(TableArgumentError):
        await tables.read_delta(T, length + 1, 10)


async def test_concurrent_conditional_inserts_one_wins() -> None:
    _, tables = await make()
    results = await asyncio.gather(
        *(tables.update(T, [(b"k", b"%d" % i, NOT_EXISTS)], -1) for i in range(10)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, TableKeyBadVersionError) for r in results if isinstance(r, BaseException))


Operation = tuple[str, list[tuple[bytes, bytes, str]]]
operation: st.SearchStrategy[Operation] = st.one_of(
    st.tuples(st.just("put"), st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c", b"d"]), st.binary(max_size=8),
                                                 st.sampled_from(["none", "absent", "current", "stale"])),
                                       min_size=1, max_size=3)),
    st.tuples(st.just("remove"), st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c", b"d"]), st.just(b""),
                                                    st.sampled_from(["none", "current", "stale"])),
                                          min_size=1, max_size=3)),
    st.tuples(st.just("reload"), st.just([])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, max_size=25), st.integers(min_value=5, max_value=64))
def test_matches_dict_model(ops: list[tuple[str, list[tuple[bytes, bytes, str]]]], chunk: int) -> None:
    asyncio.run(_run_model(ops, chunk))


async def _run_model(ops: list[tuple[str, list[tuple[bytes, bytes, str]]]], chunk: int) -> None:
    store = FakeSegmentStore(read_chunk=chunk)
    tables = TableStore(store)  # type: ignore[arg-type]
    await tables.create_table(T)
    model: dict[bytes, tuple[int, bytes]] = {}

    def version_for(key: bytes, mode: str) -> int:
        if mode == "none":
            return NO_VERSION
        if mode == "absent":
            return NOT_EXISTS
        current = model.get(key)
        base = current[0] if current else 1_000_000
        return base if mode == "current" else base + 1

    for kind, items in ops:
        if kind == "reload":
            tables = TableStore(store)  # type: ignore[arg-type]
            continue
        versioned = [(key, value, version_for(key, mode)) for key, value, mode in items]
        expected_error: type[Exception] | None = None
        if any(v != NO_VERSION for _, _, v in versioned):
            for key, _, v in versioned:
                if v == NO_VERSION:
                    continue
                if v == NOT_EXISTS:
                    if key in model:
                        expected_error = TableKeyBadVersionError
                        break
                elif key not in model:
                    expected_error = TableKeyDoesNotExistError
                    break
                elif model[key][0] != v:
                    expected_error = TableKeyBadVersionError
                    break
        if kind == "put":
            if expected_error:
                with pytest.raises(expected_error):
                    await tables.update(T, versioned, -1)
            else:
                versions = await tables.update(T, versioned, -1)
                assert versions == sorted(versions) and len(set(versions)) == len(versions)
                for (key, value, _), version in zip(versioned, versions, strict=True):
                    model[key] = (version, value)
        else:
            keys = [(key, v) for key, _, v in versioned]
            if expected_error:
                with pytest.raises(expected_error):
                    await tables.remove(T, keys, -1)
            else:
                await tables.remove(T, keys, -1)
                for key, _ in keys:
                    model.pop(key, None)
        assert await tables.get(T, [b"a", b"b", b"c", b"d"]) == [model.get(k) for k in (b"a", b"b", b"c", b"d")]
    page, _ = await tables.iterate_entries(T, b"", 100)
    assert {k: (v, val) for k, v, val in page} == model
    delta = await TableStore(store).read_delta(T, 0, 1000)  # type: ignore[arg-type]
    assert {k: (v, val) for k, v, val in delta.entries} == model
