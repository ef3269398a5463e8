"""Recovery: close + reopen and crash (abort) + reopen keep every acked operation exactly once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from anabranch.segmentstore.errors import NoSuchSegmentError, SegmentTruncatedError
from anabranch.segmentstore.metadata import lts_name_of
from anabranch.segmentstore.store import SegmentStore

from .conftest import StoreEnv
from .test_api import read_all

SEG = "scope/stream/0.#epoch.0"


async def fill(store: SegmentStore, name: str, writer: uuid.UUID, first: int, count: int) -> bytes:
    events = [f"event-{i:06d};".encode() for i in range(first, first + count)]
    await asyncio.gather(*(store.append(name, e, writer_id=writer, event_number=i)
                           for i, e in zip(range(first, first + count), events, strict=True)))
    return b"".join(events)


@pytest.mark.parametrize("crash", [False, True])
async def test_restart_keeps_acked_appends_once(env: StoreEnv, crash: bool) -> None:
    store = await env.open()
    writer = uuid.uuid4()
    await store.create_segment(SEG)
    expected = await fill(store, SEG, writer, 1, 200)
    store = await env.restart(crash=crash)
    assert await read_all(store, SEG) == expected
    assert await store.get_writer_event_number(SEG, writer) == 200
    expected += await fill(store, SEG, writer, 201, 50)
    store = await env.restart(crash=crash)
    assert await read_all(store, SEG) == expected
    assert await store.get_writer_event_number(SEG, writer) == 250


@pytest.mark.parametrize("crash", [False, True])
async def test_states_survive_restart(env: StoreEnv, crash: bool) -> None:
    store = await env.open()
    names = [f"scope/s/{i}.#epoch.0" for i in range(4)]
    txn = names[3] + "#transaction." + "12" * 16
    for name in [*names, txn]:
        await store.create_segment(name, scale_type=1, target_rate=7)
        await store.append(name, name.encode())
    attribute = uuid.uuid4()
    await store.update_attributes(names[2], [(attribute, 42, None)])
    await store.seal(names[0])
    await store.truncate(names[1], 3)
    await store.delete(names[2])
    await store.merge(names[3], txn)
    store = await env.restart(crash=crash)
    assert (await store.get_info(names[0])).sealed
    assert (await store.get_info(names[1])).start_offset == 3
    with pytest.raises(SegmentTruncatedError):
        await store.read(names[1], 0, 10)
    with pytest.raises(NoSuchSegmentError):
        await store.get_info(names[2])
    with pytest.raises(NoSuchSegmentError):
        await store.get_info(txn)
    assert await read_all(store, names[3]) == names[3].encode() + txn.encode()
    info = await store.get_info(names[3])
    assert (info.scale_type, info.target_rate, info.sealed) == (1, 7, False)
    assert store.segment_names() == sorted([names[0], names[1], names[3]])


async def test_recovery_after_tier1_truncation_reads_lts(env: StoreEnv) -> None:
    store = await env.open()
    writer = uuid.uuid4()
    await store.create_segment(SEG)
    expected = await fill(store, SEG, writer, 1, 300)
    await store.flush_to_storage()
    await store.flush_to_storage()
    container = store.container(SEG)
    assert container.statistics()["tier1_truncated_upto"] > 0
    expected += await fill(store, SEG, writer, 301, 100)
    store = await env.restart(crash=True)
    assert await read_all(store, SEG) == expected
    assert await store.get_writer_event_number(SEG, writer) == 400
    container = store.container(SEG)
    assert container.metadata.by_name[SEG].storage_length == len(expected) - 100 * len(b"event-000000;")


async def test_lts_ahead_of_checkpoint_is_not_duplicated(env: StoreEnv) -> None:
    store = await env.open()
    writer = uuid.uuid4()
    await store.create_segment(SEG)
    expected = await fill(store, SEG, writer, 1, 100)
    await store.flush_to_storage()
    expected += await fill(store, SEG, writer, 101, 100)
    container = store.container(SEG)
    meta = container.metadata.by_name[SEG]
    pieces = container.read_index.gather(meta.segment_id, meta.storage_length, meta.length)
    await container._storage.write(meta.lts_name, meta.storage_length, pieces)  # LTS ahead, no checkpoint
    store = await env.restart(crash=True)
    assert await read_all(store, SEG) == expected
    expected += await fill(store, SEG, writer, 201, 10)
    await store.flush_to_storage()
    store = await env.restart(crash=True)
    assert await read_all(store, SEG) == expected


async def test_merge_of_partly_flushed_source_survives_crash(env: StoreEnv) -> None:
    store = await env.open()
    txn = SEG + "#transaction." + "34" * 16
    await store.create_segment(SEG)
    await store.create_segment(txn)
    await store.append(SEG, b"target;")
    await store.append(txn, b"flushed-part;")
    await store.flush_to_storage()
    await store.append(txn, b"memory-part;")
    await store.merge(SEG, txn)
    await store.append(SEG, b"after;")
    expected = b"target;flushed-part;memory-part;after;"
    assert await read_all(store, SEG) == expected
    store = await env.restart(crash=True)
    assert await read_all(store, SEG) == expected
    await store.flush_to_storage()
    assert store.container(SEG).metadata.by_name[SEG].pending_merges == ()
    store = await env.restart(crash=True)
    assert await read_all(store, SEG) == expected
    container = store.container(SEG)
    assert container.metadata.by_name[SEG].segment_id == 1
    assert not await container._storage.exists(lts_name_of(txn, 2))


async def test_backpressure_bounds_unflushed_memory(env: StoreEnv) -> None:
    store = await env.open(cache_size=4 * 1024 * 1024, max_unflushed=1024 * 1024, flush_threshold=256 * 1024)
    await store.create_segment(SEG)
    block = b"q" * 64 * 1024
    peak = 0
    container = store.container(SEG)
    for _ in range(8):
        await asyncio.gather(*(store.append(SEG, block) for _ in range(16)))
        peak = max(peak, container.read_index.memory_bytes + container.cache.size)
    assert (await store.get_info(SEG)).length == 128 * len(block)
    assert peak <= 4 * 1024 * 1024 + 16 * len(block)
    assert container.statistics()["lts_bytes_flushed"] > 0
    assert container.statistics()["append_waits"] > 0
    assert (await store.read(SEG, 0, 10)).data == b"q" * 10
