"""Table compaction against a dict model: nothing acknowledged is lost, nothing removed comes back, versions move
forward, delta reads and iterators keep working across compactions, and a restart rebuilds from the start offset."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tables_fake_store import FakeSegmentStore

from anabranch.errors import ConfigError
from anabranch.protocol.commands import NO_VERSION, NOT_EXISTS
from anabranch.segmentstore.store import open_segment_store
from anabranch.segmentstore.tables import (
    CompactionPolicy,
    TableKeyBadVersionError,
    TableKeyDoesNotExistError,
    TableStore,
)

T = "scope/_tables/t"
KEYS = [b"a", b"b", b"c", b"d"]
Model = dict[bytes, tuple[int, bytes]]


async def make(policy: CompactionPolicy) -> tuple[FakeSegmentStore, TableStore]:
    store = FakeSegmentStore()
    tables = TableStore(store, policy)  # type: ignore[arg-type]
    await tables.create_table(T)
    return store, tables


async def drain_delta(tables: TableStore, position: int, state: Model) -> tuple[int, bool]:
    """Read deltas from ``position`` to the end as a client does; returns the end position and whether cleared."""
    cleared = False
    for _ in range(10_000):
        delta = await tables.read_delta(T, position, 3)
        if delta.should_clear:
            state.clear()
            cleared = True
        for key, version, value in delta.entries:
            state[key] = (version, value)
        if not delta.entries:
            assert delta.reached_end
            return delta.last_position, cleared
        assert delta.last_position > position
        position = delta.last_position
    raise AssertionError("delta reads never reached the end")


def test_policy_validation_and_trigger() -> None:
    with pytest.raises(ConfigError):
        CompactionPolicy(max_utilization=0.0)
    with pytest.raises(ConfigError):
        CompactionPolicy(window_bytes=0)
    policy = CompactionPolicy(min_bytes=100, max_utilization=0.5, window_bytes=10)
    assert policy.needed(0, 101, 50) and not policy.needed(0, 100, 0) and not policy.needed(50, 150, 0)
    assert not policy.needed(0, 200, 100)
    assert policy.window_end(0, 90, [0, 5, 10, 30]) == 10
    assert policy.window_end(0, 90, [0, 5]) == 5 and policy.window_end(0, 90, [0, 50]) == 50
    assert policy.window_end(0, 9, [0, 5]) == 9 and policy.window_end(0, 90, [0]) == 90


async def test_one_key_updated_often_stays_bounded_and_survives_reload() -> None:
    policy = CompactionPolicy(min_bytes=2000, max_utilization=0.5, window_bytes=500)
    store, tables = await make(policy)
    version = 0
    for i in range(3000):
        [version] = await tables.update(T, [(b"key", b"value-%05d" % i, NO_VERSION)], -1)
    await tables.wait_for_compactions()
    info = await tables.info(T)
    assert info.start_offset > 0 and info.length - info.start_offset < 2000 + 500 + 100
    assert info.entry_count == 1
    assert await tables.get(T, [b"key"]) == [(version, b"value-02999")]
    reloaded = TableStore(store, policy)  # type: ignore[arg-type]
    assert await reloaded.get(T, [b"key"]) == [(version, b"value-02999")]
    assert await reloaded.info(T) == info


async def test_copied_entry_gets_a_new_version_and_old_versions_fail() -> None:
    policy = CompactionPolicy(min_bytes=0, max_utilization=1.0, window_bytes=1)
    store, tables = await make(CompactionPolicy(min_bytes=1 << 30))
    [old] = await tables.update(T, [(b"a", b"1", NOT_EXISTS)], -1)
    await tables.update(T, [(b"b", b"x", NO_VERSION)], -1)
    tables = TableStore(store, policy)  # type: ignore[arg-type]
    assert await tables.compact(T)
    [hit] = await tables.get(T, [b"a"])
    assert hit is not None
    new, value = hit
    assert value == b"1" and new > old
    assert store.start_offsets[T] > old
    with pytest.raises(TableKeyBadVersionError):
        await tables.update(T, [(b"a", b"2", old)], -1)
    with pytest.raises(TableKeyBadVersionError):
        await tables.remove(T, [(b"a", old)], -1)
    [newer] = await tables.update(T, [(b"a", b"2", new)], -1)
    assert newer > new


async def test_delta_from_a_compacted_position_clears_and_scans_from_the_start() -> None:
    store, tables = await make(CompactionPolicy(min_bytes=1 << 30))
    state: Model = {}
    position, cleared = await drain_delta(tables, 0, state)
    assert position == 0 and not cleared
    await tables.update(T, [(b"a", b"1", NO_VERSION), (b"b", b"1", NO_VERSION)], -1)
    await tables.update(T, [(b"c", b"3", NO_VERSION)], -1)
    position, cleared = await drain_delta(tables, position, state)
    await tables.update(T, [(b"a", b"2", NO_VERSION)], -1)
    await tables.remove(T, [(b"c", NO_VERSION)], -1)
    tables = TableStore(store, CompactionPolicy(min_bytes=0, max_utilization=1.0, window_bytes=1 << 20))  # type: ignore[arg-type]
    assert await tables.compact(T)
    start = store.start_offsets[T]
    assert start > position
    current = {key: hit for key, hit in zip(KEYS, await tables.get(T, KEYS), strict=True) if hit is not None}
    assert set(current) == {b"a", b"b"}
    stale = await tables.read_delta(T, 1, 100)
    assert stale.should_clear and stale.last_position > 1
    assert {k: (v, val) for k, v, val in stale.entries} == current
    fresh: Model = {}
    end, cleared = await drain_delta(tables, 0, fresh)
    assert cleared and fresh == current and end == (await tables.info(T)).length
    end_again, cleared = await drain_delta(tables, end, fresh)
    assert end_again == end and not cleared
    same_position, cleared = await drain_delta(tables, position, state)
    assert cleared and state == current and same_position == end


async def test_iteration_continues_across_compactions() -> None:
    _, tables = await make(CompactionPolicy(min_bytes=0, max_utilization=1.0, window_bytes=64))
    expected = [b"k%02d" % i for i in range(40)]
    for i in range(0, 40, 4):
        await tables.update(T, [(key, b"v" * 20, NO_VERSION) for key in expected[i : i + 4]], -1)
    seen: list[bytes] = []
    token = b""
    starts = set()
    while True:
        page, token = await tables.iterate_entries(T, token, 3)
        if not page:
            break
        seen += [key for key, _, _ in page]
        await tables.update(T, [(b"k00", b"churn", NO_VERSION)], -1)
        await tables.wait_for_compactions()
        starts.add((await tables.info(T)).start_offset)
    assert seen == expected and len(starts) > 3


async def test_concurrent_updates_keep_their_order_while_compacting() -> None:
    store, tables = await make(CompactionPolicy(min_bytes=0, max_utilization=0.9, window_bytes=40))
    store.read_chunk = 16
    calls = [tables.update(T, [(b"k", b"%d" % i, NO_VERSION), (b"o%d" % (i % 5), b"x", NO_VERSION)], -1)
             for i in range(300)]
    results, _, _ = await asyncio.gather(asyncio.gather(*calls), tables.compact(T), tables.read_delta(T, 0, 5))
    versions = [pair[0] for pair in results]
    assert versions == sorted(versions)
    await tables.wait_for_compactions()
    [hit] = await tables.get(T, [b"k"])
    assert hit is not None and hit[1] == b"299" and hit[0] >= versions[-1]
    assert (await tables.info(T)).start_offset > 0


async def test_delete_during_compaction_stops_it() -> None:
    _, tables = await make(CompactionPolicy(min_bytes=0, max_utilization=1.0, window_bytes=8))
    for i in range(20):
        await tables.update(T, [(b"k%d" % (i % 3), b"v", NO_VERSION)], -1)
    await tables.delete_table(T, must_be_empty=False)
    await asyncio.wait_for(tables.wait_for_compactions(), 10)
    await tables.close()


Op = tuple[str, list[tuple[bytes, bytes, str]]]
op_strategy: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("put"), st.lists(st.tuples(st.sampled_from(KEYS), st.binary(max_size=12),
                                                 st.sampled_from(["none", "absent", "current", "stale"])),
                                       min_size=1, max_size=3)),
    st.tuples(st.just("remove"), st.lists(st.tuples(st.sampled_from(KEYS), st.just(b""),
                                                    st.sampled_from(["none", "current", "stale"])),
                                          min_size=1, max_size=3)),
    st.tuples(st.sampled_from(["reload", "delta", "iterate"]), st.just([])),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(op_strategy, max_size=40), st.integers(min_value=1, max_value=120),
       st.sampled_from([0.5, 0.9, 1.0]), st.integers(min_value=5, max_value=64))
def test_matches_dict_model_with_frequent_compaction(
    ops: list[Op], window: int, utilization: float, chunk: int
) -> None:
    policy = CompactionPolicy(min_bytes=0, max_utilization=utilization, window_bytes=window)
    asyncio.run(_run_model(ops, policy, chunk))


def _expected_error(model: Model, versioned: list[tuple[bytes, bytes, int]]) -> type[Exception] | None:
    if all(v == NO_VERSION for _, _, v in versioned):
        return None
    for key, _, v in versioned:
        if v == NO_VERSION:
            continue
        if v == NOT_EXISTS:
            if key in model:
                return TableKeyBadVersionError
        elif key not in model:
            return TableKeyDoesNotExistError
        elif model[key][0] != v:
            return TableKeyBadVersionError
    return None


async def _run_model(ops: list[Op], policy: CompactionPolicy, chunk: int) -> None:
    store = FakeSegmentStore(read_chunk=chunk)
    tables = TableStore(store, policy)  # type: ignore[arg-type]
    await tables.create_table(T)
    model: Model = {}
    consumer: Model = {}
    consumer_position = 0
    token, seen, live_throughout = b"", list[bytes](), set[bytes]()

    def version_for(key: bytes, mode: str) -> int:
        if mode == "none":
            return NO_VERSION
        if mode == "absent":
            return NOT_EXISTS
        base = model[key][0] if key in model else 1_000_000
        return base if mode == "current" else base + 1

    for kind, items in ops:
        if kind == "reload":
            await tables.wait_for_compactions()
            tables = TableStore(store, policy)  # type: ignore[arg-type]
        elif kind == "delta":
            delta = await tables.read_delta(T, consumer_position, 2)
            if delta.should_clear:
                assert consumer_position < store.start_offsets[T]
                consumer.clear()
            assert delta.last_position > consumer_position or (not delta.entries and delta.reached_end)
            consumer.update({key: (version, value) for key, version, value in delta.entries})
            consumer_position = delta.last_position
        elif kind == "iterate":
            page, token = await tables.iterate_entries(T, token, 2)
            if page:
                seen += [key for key, _, _ in page]
            else:
                assert seen == sorted(set(seen)) and live_throughout <= set(seen)
                token, seen, live_throughout = b"", [], set(model)
        else:
            versioned = [(key, value, version_for(key, mode)) for key, value, mode in items]
            error = _expected_error(model, versioned)
            if error is not None:
                with pytest.raises(error):
                    if kind == "put":
                        await tables.update(T, versioned, -1)
                    else:
                        await tables.remove(T, [(key, v) for key, _, v in versioned], -1)
            elif kind == "put":
                versions = await tables.update(T, versioned, -1)
                for (key, value, _), version in zip(versioned, versions, strict=True):
                    model[key] = (version, value)
            else:
                await tables.remove(T, [(key, v) for key, _, v in versioned], -1)
                for key, _, _ in versioned:
                    model.pop(key, None)
                    live_throughout.discard(key)
        await tables.wait_for_compactions()
        for key, hit in zip(KEYS, await tables.get(T, KEYS), strict=True):
            if key not in model:
                assert hit is None
                continue
            assert hit is not None and hit[1] == model[key][1] and hit[0] >= model[key][0]
            model[key] = hit
    await drain_delta(tables, consumer_position, consumer)
    assert {key: consumer[key] for key in model} == model
    page, _ = await tables.iterate_entries(T, b"", 100)
    assert {k: (v, val) for k, v, val in page} == model
    reloaded = TableStore(store, policy)  # type: ignore[arg-type]
    assert await reloaded.get(T, KEYS) == [model.get(key) for key in KEYS]
    delta = await reloaded.read_delta(T, 0, 1000)
    assert {k: (v, val) for k, v, val in delta.entries} == model
    assert delta.should_clear == (store.start_offsets[T] > 0)


async def test_restart_of_a_real_segment_store_keeps_compacted_tables(tmp_path: Path) -> None:
    policy = CompactionPolicy(min_bytes=4096, max_utilization=0.5, window_bytes=2048)
    rng = random.Random(7)
    model: dict[bytes, bytes] = {}
    store = await open_segment_store(tmp_path, 1, cache_size=16 << 20)
    tables = TableStore(store, policy)
    await tables.create_table(T)
    for i in range(600):
        key = b"k%d" % rng.randrange(12)
        if rng.random() < 0.2:
            await tables.remove(T, [(key, NO_VERSION)], -1)
            model.pop(key, None)
        else:
            model[key] = b"%d" % i * rng.randrange(1, 20)
            await tables.update(T, [(key, model[key], NO_VERSION)], -1)
    await tables.wait_for_compactions()
    info = await tables.info(T)
    assert info.start_offset > 0 and info.length - info.start_offset < 4096 + 2048 + 1024
    before = await tables.iterate_entries(T, b"", 100)
    await tables.close()
    await store.close()
    store = await open_segment_store(tmp_path, 1, cache_size=16 << 20)
    try:
        tables = TableStore(store, policy)
        assert await tables.info(T) == info
        assert await tables.iterate_entries(T, b"", 100) == before
        assert {key: value for key, _, value in before[0]} == model
        await tables.update(T, [(b"after", b"restart", NOT_EXISTS)], -1)
        await tables.wait_for_compactions()
    finally:
        await tables.close()
        await store.close()
