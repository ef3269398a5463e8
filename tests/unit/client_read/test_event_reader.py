"""Reader groups and event readers over an in-memory store and controller (one component: the read path)."""

from __future__ import annotations

import asyncio
import types
import uuid
from typing import Any

import pytest
from client_read_fakes import FakeController, FakeStore, events, router

from anabranch.client.errors import ClientError
from anabranch.client.event_reader import EventStreamReader
from anabranch.client.reader_group import ReaderGroup, ReaderGroupConfig, create_group, open_group
from anabranch.model.stream_cut import StreamCut

SCOPE, STREAM = "sc", "st"
FAST = {"group_refresh_time": 0.05}


async def make_group(segments: int, name: str = "rg", **options: Any) -> tuple[FakeStore, FakeController, ReaderGroup]:
    store = FakeStore()
    controller = FakeController(store, SCOPE, STREAM, segments)
    config = ReaderGroupConfig.for_streams(SCOPE, STREAM, **{**FAST, **options})
    group, created = await create_group(controller, router(store), SCOPE, name, config)  # type: ignore[arg-type]
    assert created
    return store, controller, group


async def drain(reader: EventStreamReader[Any], count: int, timeout: float = 10.0) -> list[bytes]:
    out: list[bytes] = []

    async def run() -> None:
        while len(out) < count:
            read = await reader.read_next_event(timeout=0.2)
            if read.event is not None:
                out.append(read.event)

    await asyncio.wait_for(run(), timeout)
    return out


async def test_single_reader_reads_everything_then_finishes_on_seal() -> None:
    store, controller, group = await make_group(2)
    store.append(controller.name(0), events(b"a0", b"a1"))
    store.append(controller.name(1), events(b"b0"))
    reader = await group.create_reader("r1")
    assert sorted(await drain(reader, 3)) == [b"a0", b"a1", b"b0"]
    store.seal(controller.name(0))
    store.seal(controller.name(1))
    assert [e async for e in reader] == []
    await reader.close()
    assert (await group.state()).readers == frozenset()


async def test_two_readers_split_segments_without_duplicates() -> None:
    store, controller, group = await make_group(4)
    for i in range(4):
        store.append(controller.name(i), events(*[b"%d-%d" % (i, j) for j in range(5)]))
    r1 = await group.create_reader("r1")
    r2 = await group.create_reader("r2")
    got: list[bytes] = []

    async def consume(reader: EventStreamReader[Any]) -> None:
        while len(got) < 20:
            read = await reader.read_next_event(timeout=0.1)
            if read.event is not None:
                got.append(read.event)

    await asyncio.wait_for(asyncio.gather(consume(r1), consume(r2)), 10)
    assert sorted(got) == sorted(b"%d-%d" % (i, j) for i in range(4) for j in range(5))
    state = await group.state()
    assert sorted(len(state.segments_of(r)) for r in ("r1", "r2")) == [2, 2]


async def test_offline_reader_segments_resume_at_its_position() -> None:
    store, controller, group = await make_group(1)
    store.append(controller.name(0), events(*[b"e%d" % i for i in range(6)]))
    r1 = await group.create_reader("r1")
    assert await drain(r1, 2) == [b"e0", b"e1"]
    await r1.close()
    r2 = await group.create_reader("r2")
    assert await drain(r2, 4) == [b"e2", b"e3", b"e4", b"e5"]


async def test_successors_read_only_after_all_predecessors() -> None:
    store, controller, group = await make_group(2)
    store.append(controller.name(0), events(b"old0"))
    store.append(controller.name(1), events(b"old1"))
    (merged,) = controller.scale([0, 1], [(0.0, 1.0)])
    store.append(controller.name(merged), events(b"new"))
    reader = await group.create_reader("r1")
    got = await drain(reader, 3)
    assert got.index(b"new") == 2


async def test_checkpoint_and_reset_to_it() -> None:
    store, controller, group = await make_group(1)
    store.append(controller.name(0), events(b"x0", b"x1", b"x2", b"x3"))
    reader = await group.create_reader("r1")
    assert await drain(reader, 1) == [b"x0"]
    checkpoint_task = asyncio.ensure_future(group.initiate_checkpoint("cp", timeout=5))
    before: list[bytes] = []
    while True:
        read = await asyncio.wait_for(reader.read_next_event(timeout=0.2), 5)
        if read.checkpoint_name is not None:
            break
        if read.event is not None:
            before.append(read.event)
    checkpoint = await checkpoint_task
    assert read.checkpoint_name == "cp"
    assert list(checkpoint.positions.values()) == [10 * (1 + len(before))]
    after = await drain(reader, 3 - len(before))
    assert before + after == [b"x1", b"x2", b"x3"]
    await reader.close()
    await group.reset_to(checkpoint)
    again = await group.create_reader("r2")
    assert await drain(again, 3 - len(before)) == after


async def test_reading_between_two_stream_cuts() -> None:
    store = FakeStore()
    controller = FakeController(store, SCOPE, STREAM, 1)
    store.append(controller.name(0), events(b"a", b"b", b"c", b"d"))
    config = ReaderGroupConfig((StreamCut(SCOPE, STREAM, {0: 9}),), (StreamCut(SCOPE, STREAM, {0: 27}),),
                               group_refresh_time=0.05)
    group, _ = await create_group(controller, router(store), SCOPE, "between", config)  # type: ignore[arg-type]
    reader = await group.create_reader("r")
    assert [e async for e in reader] == [b"b", b"c"]
    reopened = await open_group(controller, router(store), SCOPE, "between")  # type: ignore[arg-type]
    assert (await reopened.state()).is_finished


async def test_truncated_segment_is_skipped_to_its_head() -> None:
    store, controller, group = await make_group(1)
    store.append(controller.name(0), events(b"gone", b"kept"))
    store.truncate(controller.name(0), 12)
    reader = await group.create_reader("r")
    assert await drain(reader, 1) == [b"kept"]


async def test_reader_closes_quietly_after_its_group_was_deleted() -> None:
    store, _, group = await make_group(1)
    reader = await group.create_reader("r")
    await group.delete()
    await reader.close()
    assert group.table.segment not in store.tables


async def test_automatic_checkpoints_are_silent() -> None:
    store, controller, group = await make_group(1, automatic_checkpoint_interval=0.01)
    store.append(controller.name(0), events(*[b"e%d" % i for i in range(5)]))
    reader = await group.create_reader("r")
    seen = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not (await group.state()).checkpoints and loop.time() < deadline:
        read = await reader.read_next_event(timeout=0.1)
        assert read.checkpoint_name is None
        if read.event is not None:
            seen.append(read.event)
    automatic = (await group.state()).checkpoints
    assert automatic and automatic[0].name.startswith("_auto-")
    seen += await drain(reader, 5 - len(seen))
    assert seen == [b"e%d" % i for i in range(5)]


async def test_readers_of_separately_opened_handles_share_the_work() -> None:
    store, controller, group = await make_group(2)
    again, created = await create_group(controller, router(store), SCOPE, "rg",  # type: ignore[arg-type]
                                        ReaderGroupConfig.for_streams(SCOPE, STREAM, read_from_tail=True))
    assert not created and not again.config.read_from_tail
    for i in range(2):
        store.append(controller.name(i), events(*[b"%d-%d" % (i, j) for j in range(10)]))
    r1 = await group.create_reader("r1")
    r2 = await (await open_group(controller, router(store), SCOPE, "rg")).create_reader("r2")  # type: ignore[arg-type]
    got: list[bytes] = []

    async def consume(reader: EventStreamReader[Any]) -> None:
        while len(got) < 20:
            read = await reader.read_next_event(timeout=0.1)
            if read.event is not None:
                got.append(read.event)

    await asyncio.wait_for(asyncio.gather(consume(r1), consume(r2)), 10)
    assert sorted(got) == sorted(b"%d-%d" % (i, j) for i in range(2) for j in range(10))


async def test_read_events_returns_buffered_events_in_order_with_exact_positions() -> None:
    store, controller, group = await make_group(2)
    store.append(controller.name(0), events(b"a0", b"a1", b"a2"))
    store.append(controller.name(1), events(b"b0", b"b1"))
    reader = await group.create_reader("r1")
    batches: list[list[Any]] = []

    async def run() -> None:
        while sum(len(b) for b in batches) < 5:
            batch = await reader.read_events(max_events=2, timeout=0.2)
            if batch[0].event is not None:
                batches.append(batch)

    await asyncio.wait_for(run(), 10)
    assert all(len(b) <= 2 for b in batches)
    reads = [r for b in batches for r in b]
    by_segment: dict[Any, list[Any]] = {}
    for read in reads:
        by_segment.setdefault(read.segment, []).append(read)
    assert sorted(r.event for r in reads) == [b"a0", b"a1", b"a2", b"b0", b"b1"]
    for segment_reads in by_segment.values():
        offsets = [r.offset for r in segment_reads]
        assert offsets == sorted(offsets)
    expected = dict.fromkeys(by_segment, 0)
    for read in reads:
        expected[read.segment] = read.offset + 8 + len(read.event)
        assert {s: read.position.offsets.get(s, 0) for s in by_segment} == expected
    last = reads[-1]
    assert last.position == reader.position
    await reader.close()


async def test_automatic_retention_acknowledges_each_completed_checkpoint() -> None:
    store, controller, group = await make_group(1, retention="automatic")
    store.append(controller.name(0), events(b"a", b"b"))
    acknowledged: list[Any] = []

    async def record(subscriber: str, group_id: Any, generation: int, cut: StreamCut) -> None:
        acknowledged.append((subscriber, cut))

    async def stored_config(scope: str, name: str) -> Any:
        return types.SimpleNamespace(reader_group_id=uuid.UUID(int=7), generation=0)

    controller.update_subscriber_stream_cut = record  # type: ignore[attr-defined]
    controller.get_reader_group_config = stored_config  # type: ignore[method-assign]
    reader = await group.create_reader("r1")
    assert sorted(await drain(reader, 2)) == [b"a", b"b"]
    checkpoint = asyncio.create_task(group.initiate_checkpoint("cp", timeout=10))
    while not checkpoint.done():
        await reader.read_next_event(timeout=0.05)
    await checkpoint
    assert acknowledged == [(f"{SCOPE}/rg", StreamCut(SCOPE, STREAM, {0: 2 * 9}))]
    await reader.close()


async def test_automatic_retention_acknowledges_automatic_checkpoints_too() -> None:
    store, controller, group = await make_group(1, retention="automatic", automatic_checkpoint_interval=0.01)
    store.append(controller.name(0), events(b"a", b"b"))
    acknowledged: list[StreamCut] = []

    async def record(subscriber: str, group_id: Any, generation: int, cut: StreamCut) -> None:
        acknowledged.append(cut)

    async def stored_config(scope: str, name: str) -> Any:
        return types.SimpleNamespace(reader_group_id=uuid.UUID(int=7), generation=0)

    controller.update_subscriber_stream_cut = record  # type: ignore[attr-defined]
    controller.get_reader_group_config = stored_config  # type: ignore[method-assign]
    reader = await group.create_reader("r1")
    assert sorted(await drain(reader, 2)) == [b"a", b"b"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while StreamCut(SCOPE, STREAM, {0: 2 * 9}) not in acknowledged and loop.time() < deadline:
        assert (await reader.read_next_event(timeout=0.05)).checkpoint_name is None
    assert StreamCut(SCOPE, STREAM, {0: 2 * 9}) in acknowledged, acknowledged
    await reader.close()


async def test_groups_without_retention_cannot_acknowledge_cuts() -> None:
    _store, _controller, group = await make_group(1)
    with pytest.raises(ClientError, match="not a subscriber"):
        await group.update_retention_stream_cut([StreamCut(SCOPE, STREAM, {0: 0})])


def test_event_reads_from_a_block_equal_plain_ones_and_build_their_position_lazily() -> None:
    from anabranch.client.event_reader import EventRead, _BlockEventRead
    from anabranch.client.reader_group_config import Position
    from anabranch.model.names import ScopedSegment

    one, two = ScopedSegment("sc", "st", 0), ScopedSegment("sc", "st", 1)
    base = {one: 10, two: 20}
    lazy: EventRead[bytes] = _BlockEventRead(b"e", base, one, 10, 19)
    plain = EventRead(b"e", Position({one: 19, two: 20}), None, one, 10)
    assert lazy == plain and repr(lazy) == repr(plain)
    assert lazy.position is lazy.position and dict(lazy.position.offsets) == {one: 19, two: 20}
    assert lazy.pointer == plain.pointer and lazy.pointer is not None and lazy.pointer.length == 9
    assert not lazy.is_checkpoint and EventRead(None, Position(), "cp").is_checkpoint
    assert lazy != EventRead(b"other", Position({one: 19, two: 20}), None, one, 10)
