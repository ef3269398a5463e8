"""Every SegmentStore API method and its errors, in memory-speed unit tests over a real file log."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from anabranch.protocol.commands import NULL_ATTRIBUTE_VALUE
from anabranch.segmentstore.errors import (
    BadEventNumberError,
    BadOffsetError,
    InvalidOffsetError,
    NoSuchSegmentError,
    SegmentExistsError,
    SegmentSealedError,
    SegmentTruncatedError,
)
from anabranch.segmentstore.store import SegmentStore, container_id_for

SEG = "scope/stream/0.#epoch.0"


async def read_all(store: SegmentStore, name: str, offset: int = 0) -> bytes:
    info = await store.get_info(name)
    out = bytearray()
    while offset < info.length:
        result = await store.read(name, offset, 2 * 1024 * 1024)
        out += result.data
        offset += len(result.data)
    return bytes(out)


async def test_create_and_info(store: SegmentStore) -> None:
    await store.create_segment(SEG, scale_type=1, target_rate=100, is_table=False)
    info = await store.get_info(SEG)
    assert (info.name, info.length, info.start_offset, info.sealed, info.deleted) == (SEG, 0, 0, False, False)
    assert (info.scale_type, info.target_rate, info.is_table) == (1, 100, False)
    assert info.last_modified_ms > 0
    with pytest.raises(SegmentExistsError):
        await store.create_segment(SEG)
    await store.create_segment("scope/_tables/t", is_table=True)
    assert (await store.get_info("scope/_tables/t")).is_table
    assert store.segment_names("scope/stream") == [SEG]
    assert store.segment_names() == sorted([SEG, "scope/_tables/t"])


async def test_missing_segment_errors(store: SegmentStore) -> None:
    calls = [
        store.append("x", b"1"), store.read("x", 0, 10), store.get_info("x"), store.seal("x"),
        store.truncate("x", 0), store.delete("x"), store.get_attribute("x", uuid.uuid4()),
        store.update_attributes("x", []), store.update_policy("x", 0, 0),
        store.get_writer_event_number("x", uuid.uuid4()),
    ]
    for call in calls:
        with pytest.raises(NoSuchSegmentError):
            await call


async def test_append_read_and_writer_dedup(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    writer = uuid.uuid4()
    assert await store.get_writer_event_number(SEG, writer) == NULL_ATTRIBUTE_VALUE
    first = await store.append(SEG, b"hello", writer_id=writer, event_number=1)
    assert first.new_length == 5 and first.previous_event_number == NULL_ATTRIBUTE_VALUE
    second = await store.append(SEG, memoryview(b"world!"), writer_id=writer, event_number=3, event_count=2)
    assert second.new_length == 11 and second.previous_event_number == 1
    for stale in (3, 2):
        with pytest.raises(BadEventNumberError) as info:
            await store.append(SEG, b"dup", writer_id=writer, event_number=stale)
        assert info.value.last_event_number == 3
    assert await store.get_writer_event_number(SEG, writer) == 3
    assert (await store.get_info(SEG)).attributes[writer] == 3
    result = await store.read(SEG, 0, 100)
    assert bytes(result.data) == b"helloworld!" and result.at_tail and not result.end_of_segment
    partial = await store.read(SEG, 2, 4)
    assert bytes(partial.data) == b"llow" and not partial.at_tail
    await store.seal(SEG)
    assert await store.get_writer_event_number(SEG, writer) == 3


async def test_queued_appends_see_earlier_queued_ones(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    writer = uuid.uuid4()
    results = await asyncio.gather(
        store.append(SEG, b"aaaaa", expected_offset=0),
        store.append(SEG, b"bb", expected_offset=5),
        store.append(SEG, b"c", writer_id=writer, event_number=1),
        store.append(SEG, b"d", writer_id=writer, event_number=2),
        store.append(SEG, b"x", expected_offset=0),
        store.append(SEG, b"y", writer_id=writer, event_number=2),
        return_exceptions=True,
    )
    assert [r.new_length for r in results[:4]] == [5, 7, 8, 9]  # type: ignore[union-attr]
    assert isinstance(results[4], BadOffsetError) and results[4].offset == 9
    assert isinstance(results[5], BadEventNumberError) and results[5].last_event_number == 2
    assert await read_all(store, SEG) == b"aaaaabbcd"


async def test_group_commit_and_order(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    await store.create_segment("scope/other/0.#epoch.0")
    writer = uuid.uuid4()
    before = store.statistics()["log_records"]
    tasks = [store.append(SEG, i.to_bytes(4, "big"), writer_id=writer, event_number=i) for i in range(1, 301)]
    tasks += [store.append("scope/other/0.#epoch.0", b"z") for _ in range(50)]
    results = await asyncio.gather(*tasks)
    records = store.statistics()["log_records"] - before
    assert records < 30, f"{records} log records for 350 concurrent appends: no group commit"
    assert [r.new_length for r in results[:300]] == [4 * i for i in range(1, 301)]
    data = await read_all(store, SEG)
    assert [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), 4)] == list(range(1, 301))


async def test_conditional_append(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    assert (await store.append(SEG, b"abc", expected_offset=0)).new_length == 3
    with pytest.raises(BadOffsetError) as info:
        await store.append(SEG, b"abc", expected_offset=0)
    assert info.value.offset == 3


async def test_seal(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    await store.append(SEG, b"12345")
    assert await store.seal(SEG) == 5
    with pytest.raises(SegmentSealedError) as sealed:
        await store.seal(SEG)
    assert sealed.value.length == 5
    with pytest.raises(SegmentSealedError) as sealed:
        await store.append(SEG, b"more")
    assert sealed.value.length == 5
    assert (await store.get_info(SEG)).sealed
    end = await store.read(SEG, 5, 10)
    assert end.data == b"" and end.end_of_segment and end.at_tail
    last = await store.read(SEG, 3, 10)
    assert bytes(last.data) == b"45" and last.end_of_segment
    with pytest.raises(InvalidOffsetError):
        await store.read(SEG, 6, 10)


async def test_tail_reads(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    empty = await store.read(SEG, 0, 10)
    assert empty.data == b"" and empty.at_tail and not empty.end_of_segment
    timed_out = await store.read(SEG, 0, 10, wait_timeout=0.05)
    assert timed_out.data == b"" and timed_out.at_tail
    waiting = asyncio.create_task(store.read(SEG, 0, 10, wait_timeout=30))
    await asyncio.sleep(0)
    assert not waiting.done()
    await store.append(SEG, b"data")
    woken = await asyncio.wait_for(waiting, 5)
    assert bytes(woken.data) == b"data" and woken.at_tail
    waiting = asyncio.create_task(store.read(SEG, 4, 10, wait_timeout=30))
    await asyncio.sleep(0)
    await store.seal(SEG)
    sealed = await asyncio.wait_for(waiting, 5)
    assert sealed.data == b"" and sealed.end_of_segment


async def test_future_read_beyond_the_end_waits_for_data_reaching_it(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    beyond = await store.read(SEG, 3, 10)
    assert beyond.data == b"" and beyond.at_tail and not beyond.end_of_segment
    waiting = asyncio.create_task(store.read(SEG, 3, 10, wait_timeout=30))
    await store.append(SEG, b"ab")
    await asyncio.sleep(0)
    assert not waiting.done()
    await store.append(SEG, b"cdef")
    result = await asyncio.wait_for(waiting, 5)
    assert bytes(result.data) == b"def" and result.at_tail
    waiting = asyncio.create_task(store.read(SEG, 9, 10, wait_timeout=30))
    await asyncio.sleep(0)
    await store.seal(SEG)
    with pytest.raises(InvalidOffsetError):
        await asyncio.wait_for(waiting, 5)


async def test_truncate(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    await store.append(SEG, b"0123456789")
    await store.truncate(SEG, 4)
    assert (await store.get_info(SEG)).start_offset == 4
    with pytest.raises(SegmentTruncatedError) as truncated:
        await store.read(SEG, 2, 10)
    assert truncated.value.start_offset == 4
    assert bytes((await store.read(SEG, 4, 100)).data) == b"456789"
    for bad in (3, 11):
        with pytest.raises(BadOffsetError) as info:
            await store.truncate(SEG, bad)
        assert info.value.offset == 4
    await store.truncate(SEG, 10)
    assert (await store.get_info(SEG)).start_offset == 10


async def test_delete_and_recreate(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    await store.append(SEG, b"old data")
    await store.flush_to_storage()
    await store.delete(SEG)
    with pytest.raises(NoSuchSegmentError):
        await store.get_info(SEG)
    assert store.segment_names() == []
    await store.create_segment(SEG)
    assert (await store.get_info(SEG)).length == 0
    await store.append(SEG, b"new")
    await store.flush_to_storage()
    assert await read_all(store, SEG) == b"new"


async def test_merge(store: SegmentStore) -> None:
    txn = SEG + "#transaction." + "ab" * 16
    await store.create_segment(SEG)
    await store.create_segment(txn)
    assert container_id_for(txn, 7) == container_id_for(SEG, 7)
    await store.append(SEG, b"head-")
    await store.append(txn, b"txn-data")
    ops_before = store.statistics()["log_operations"]
    assert await store.merge(SEG, txn) == 13
    assert store.statistics()["log_operations"] == ops_before + 1
    assert await read_all(store, SEG) == b"head-txn-data"
    with pytest.raises(NoSuchSegmentError) as missing:
        await store.merge(SEG, txn)
    assert missing.value.segment == txn
    other = SEG + "#transaction." + "cd" * 16
    await store.create_segment(other)
    await store.seal(SEG)
    with pytest.raises(SegmentSealedError) as sealed:
        await store.merge(SEG, other)
    assert sealed.value.segment == SEG


async def test_merge_rejects_truncated_source(store: SegmentStore) -> None:
    txn = SEG + "#transaction." + "ef" * 16
    await store.create_segment(SEG)
    await store.create_segment(txn)
    await store.append(txn, b"abcdef")
    await store.truncate(txn, 2)
    with pytest.raises(SegmentTruncatedError) as truncated:
        await store.merge(SEG, txn)
    assert truncated.value.segment == txn and truncated.value.start_offset == 2
    assert not (await store.get_info(txn)).sealed


async def test_merge_across_containers(store: SegmentStore) -> None:
    other = next(f"scope/o{i}/0.#epoch.0" for i in range(100)
                 if container_id_for(f"scope/o{i}/0.#epoch.0", 2) != container_id_for(SEG, 2))
    await store.create_segment(SEG)
    await store.create_segment(other)
    await store.append(SEG, b"1")
    await store.append(other, b"23")
    assert await store.merge(SEG, other) == 3
    assert await read_all(store, SEG) == b"123"
    assert store.segment_names() == [SEG]
    assert await store.merge_batch(SEG, [other]) == [3]


async def test_merge_batch(store: SegmentStore) -> None:
    sources = [SEG + "#transaction." + f"{i:032x}" for i in range(3)]
    await store.create_segment(SEG)
    for i, source in enumerate(sources):
        await store.create_segment(source)
        await store.append(source, bytes([65 + i]) * (i + 1))
    await store.seal(sources[0])
    ops_before = store.statistics()["log_operations"]
    lengths = await store.merge_batch(SEG, [sources[0], SEG + "#transaction." + "f" * 32, sources[1], sources[2]])
    assert lengths == [1, 1, 3, 6]
    assert store.statistics()["log_operations"] == ops_before + 1
    assert await read_all(store, SEG) == b"ABBCCC"
    assert store.segment_names() == [SEG]


async def test_attributes(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    a, b = uuid.uuid4(), uuid.uuid4()
    assert await store.get_attribute(SEG, a) == NULL_ATTRIBUTE_VALUE
    assert await store.update_attributes(SEG, [(a, 10, NULL_ATTRIBUTE_VALUE), (b, 20, None)])
    assert (await store.get_attribute(SEG, a), await store.get_attribute(SEG, b)) == (10, 20)
    assert not await store.update_attributes(SEG, [(a, 11, 10), (b, 21, 99)])
    assert (await store.get_attribute(SEG, a), await store.get_attribute(SEG, b)) == (10, 20)
    assert not await store.update_attributes(SEG, [(a, 11, NULL_ATTRIBUTE_VALUE)])
    assert await store.update_attributes(SEG, [(a, 11, 10), (b, 21, 20)])
    assert (await store.get_attribute(SEG, a), await store.get_attribute(SEG, b)) == (11, 21)


async def test_update_policy(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    await store.update_policy(SEG, 2, 500)
    info = await store.get_info(SEG)
    assert (info.scale_type, info.target_rate) == (2, 500)


async def test_reads_from_lts_after_flush(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    payload = bytes(range(256)) * 8192
    for i in range(0, len(payload), 100_000):
        await store.append(SEG, payload[i : i + 100_000])
    await store.flush_to_storage()
    container = store.container(SEG)
    assert container.read_index.unflushed_bytes == 0
    for index in list(container.read_index.segments):
        container.read_index.drop_flushed(index)
    assert container.read_index.memory_bytes == 0
    assert await read_all(store, SEG) == payload
    assert await read_all(store, SEG, 1_500_000) == payload[1_500_000:]
    assert container.cache.size > 0
