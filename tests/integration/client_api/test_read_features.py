"""Batch reads, event pointers and key-value-table iteration through an embedded standalone (the pytest plugin's
``anabranch_standalone``: a fresh in-memory server per test, in the test's own event loop)."""

from __future__ import annotations

import uuid

import pytest

from anabranch.client import (
    EventPointer,
    KeyValueTableConfiguration,
    ReaderGroupConfig,
    ScalingPolicy,
    SegmentTruncatedError,
    StreamConfiguration,
    StreamManager,
    StringSerializer,
    TableKey,
)
from anabranch.client.kv_table import BadKeyError
from anabranch.embedded import Standalone


def _scope() -> str:
    return f"rf{uuid.uuid4().hex[:8]}"


async def test_batch_client_reads_the_ranges_between_two_cuts_across_a_scale(anabranch_standalone: Standalone) -> None:
    scope = _scope()
    async with StreamManager(anabranch_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, "s", StreamConfiguration(ScalingPolicy.fixed(2)))
        writer = manager.create_writer(scope, "s", StringSerializer())
        for i in range(40):
            await writer.write_event(f"a{i}", routing_key=f"k{i}")
        await writer.flush()
        middle = (await manager.get_stream_info(scope, "s")).tail
        await manager.scale_stream(scope, "s", [0], [(0.0, 0.25), (0.25, 0.5)])
        for i in range(30):
            await writer.write_event(f"b{i}", routing_key=f"k{i}")
        await writer.flush()
        batch = manager.batch_client()

        everything = await batch.list_segments(scope, "s")
        assert {0, 1} < {r.segment.segment_id for r in everything} and all(r.length > 0 for r in everything)
        events = [e.event for r in everything async for e in batch.read_segment(r, StringSerializer())]
        assert sorted(events) == sorted([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(30)])

        before = await batch.list_segments(scope, "s", end=middle)
        assert {r.segment.segment_id for r in before} == {0, 1}
        assert sum(r.length for r in before) == sum(middle.positions.values())
        first = sorted([e.event for r in before async for e in batch.read_segment(r, StringSerializer())])
        assert first == sorted(f"a{i}" for i in range(40))

        after = await batch.list_segments(scope, "s", start=middle)
        assert 0 not in {r.segment.segment_id for r in after}
        later = sorted([e.event for r in after async for e in batch.read_segment(r, StringSerializer())])
        assert later == sorted(f"b{i}" for i in range(30))


async def test_event_pointers_fetch_one_event_again(anabranch_standalone: Standalone) -> None:
    scope = _scope()
    async with StreamManager(anabranch_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, "s", StreamConfiguration(ScalingPolicy.fixed(2)))
        writer = manager.create_writer(scope, "s")
        for i in range(10):
            await writer.write_event(f"event-{i}".encode(), routing_key=str(i))
        await writer.flush()
        group = await manager.create_reader_group(scope, "g", ReaderGroupConfig.for_streams(scope, "s"))
        pointers: dict[bytes, EventPointer] = {}
        async with await group.create_reader("r", StringSerializer()) as reader:
            while len(pointers) < 10:
                read = await reader.read_next_event(timeout=5)
                if read.event is not None:
                    assert read.pointer is not None
                    pointers[read.event.encode()] = read.pointer
            assert await reader.fetch_event(pointers[b"event-3"]) == "event-3"
        for event, pointer in pointers.items():
            assert await manager.read_event(EventPointer.parse(str(pointer))) == event
        assert await manager.read_event(pointers[b"event-7"], StringSerializer()) == "event-7"
        batch = manager.batch_client()
        for segment_range in await batch.list_segments(scope, "s"):
            async for item in batch.read_segment(segment_range):
                assert await manager.read_event(item.pointer) == item.event
        far = max(pointers.values(), key=lambda p: p.offset)
        await manager.truncate_stream((await manager.get_stream_info(scope, "s")).tail)
        with pytest.raises(SegmentTruncatedError):
            await manager.read_event(far)


async def test_key_value_table_iteration_all_by_family_and_prefix_in_pages(anabranch_standalone: Standalone) -> None:
    scope = _scope()
    async with StreamManager(anabranch_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        config = KeyValueTableConfiguration(partition_count=3, primary_key_length=2, secondary_key_length=3)
        await manager.create_key_value_table(scope, "t", config)
        table = await manager.get_key_value_table(scope, "t")
        families = [b"p%d" % i for i in range(5)]
        for family in families:
            for secondary in (b"aa1", b"aa2", b"ab1", b"ba1"):
                await table.put(TableKey(family, secondary), family + secondary)
        keys = [key async for key, _version in table.iterate_keys()]
        assert len(keys) == 20 == len(set(keys))
        entries = {e.key: e.value async for e in table.iterate_entries()}
        assert entries[TableKey(b"p3", b"ab1")] == b"p3ab1"

        family = sorted([k.secondary async for k, _ in table.iterate_keys(primary_key=b"p2")])
        assert family == [b"aa1", b"aa2", b"ab1", b"ba1"]
        prefixed = sorted([e.value async for e in table.iterate_entries(primary_key=b"p2", secondary_prefix=b"aa")])
        assert prefixed == [b"p2aa1", b"p2aa2"]
        ranged = sorted([k.secondary async for k, _ in table.iterate_keys(primary_key=b"p4", from_secondary=b"aa2",
                                                                           to_secondary=b"ab1")])
        assert ranged == [b"aa2", b"ab1"]

        pages = [page async for page in table.entry_pages(page_size=6)]
        assert [len(p) for p in pages][:-1] and all(len(p) <= 6 for p in pages)
        assert sum(len(p) for p in pages) == 20
        with pytest.raises(BadKeyError):
            [k async for k, _ in table.iterate_keys(secondary_prefix=b"a")]
