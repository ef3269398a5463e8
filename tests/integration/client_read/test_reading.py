"""The read side against a real ``anabranch standalone``: reader groups, checkpoints, cuts, scaling, truncation,
key-value tables and state synchronizers. Test data is appended pre-framed with raw wire appends."""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from anabranch.client.config import ClientConfig, ScalingPolicy, StreamConfiguration
from anabranch.client.connection import ConnectionPool, RawConnection, next_request_id
from anabranch.client.controller_client import ControllerClient, KeyValueTableConfiguration
from anabranch.client.errors import NoSuchReaderGroupError, VersionConflictError
from anabranch.client.event_reader import EventStreamReader
from anabranch.client.kv_table import NOT_EXISTS, KeyValueTable, Put, TableKey
from anabranch.client.reader_group import ReaderGroup, ReaderGroupConfig, create_group, open_group
from anabranch.client.segment_reader import SegmentRouter, controller_resolver
from anabranch.client.state_synchronizer import RevisionedTableClient, StateSynchronizer, synchronizer_segment
from anabranch.client.table_client import TableSegmentClient
from anabranch.model.stream_cut import StreamCut
from anabranch.protocol import commands as wire
from anabranch.testing.processes import Standalone

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]
FAST = 0.1
_names = itertools.count()


@dataclass
class Client:
    controller: ControllerClient
    pool: ConnectionPool
    router: SegmentRouter


@pytest.fixture
async def client(shared_standalone: Standalone) -> AsyncIterator[Client]:
    controller = ControllerClient(ClientConfig(controller_uri=shared_standalone.controller_uri))
    pool = ConnectionPool()
    try:
        yield Client(controller, pool, SegmentRouter(controller_resolver(controller), pool))
    finally:
        await pool.close()
        await controller.close()


def frame(*payloads: bytes) -> bytes:
    return b"".join(struct.pack(">ii", 0, len(p)) + p for p in payloads)


async def new_stream(c: Client, segments: int) -> tuple[str, str]:
    scope, stream = f"read{next(_names)}-{uuid.uuid4().hex[:6]}", "st"
    await c.controller.create_scope(scope)
    await c.controller.create_stream(scope, stream, StreamConfiguration(scaling=ScalingPolicy.fixed(segments)))
    return scope, stream


async def append(c: Client, segment: str, *payloads: bytes) -> None:
    """Appends pre-framed events with one SetupAppend + AppendBlockEnd and waits for the ack."""
    connection = await c.router.connection_for(segment)
    assert isinstance(connection, RawConnection)
    writer = uuid.uuid4()
    setup = await connection.request(wire.SetupAppend(next_request_id(), writer, segment, ""))
    assert isinstance(setup, wire.AppendSetup), setup
    acked: asyncio.Future[wire.Reply] = asyncio.get_running_loop().create_future()

    def on_reply(reply: wire.Reply) -> None:
        if not acked.done():
            acked.set_result(reply)

    connection.add_listener(writer, on_reply)
    connection.send(wire.AppendBlockEnd(writer, 0, frame(*payloads), len(payloads), len(payloads), next_request_id()))
    reply = await asyncio.wait_for(acked, 10)
    connection.remove_listener(writer)
    assert isinstance(reply, wire.DataAppended), reply


async def segment_names(c: Client, scope: str, stream: str) -> list[str]:
    return [s.qualified_name for s in await c.controller.get_current_segments(scope, stream)]


async def group_for(c: Client, scope: str, stream: str, **options: Any) -> ReaderGroup:
    config = ReaderGroupConfig.for_streams(scope, stream, group_refresh_time=FAST, **options)
    group, created = await create_group(c.controller, c.router, scope, f"rg{next(_names)}", config)
    assert created
    return group


async def read_n(readers: list[EventStreamReader[Any]], count: int, timeout: float = 30.0) -> list[bytes]:
    got: list[bytes] = []

    async def consume(reader: EventStreamReader[Any]) -> None:
        while len(got) < count:
            read = await reader.read_next_event(timeout=0.2)
            if read.event is not None:
                got.append(read.event)

    await asyncio.wait_for(asyncio.gather(*(consume(r) for r in readers)), timeout)
    return got


async def test_two_readers_split_segments(client: Client) -> None:
    scope, stream = await new_stream(client, 4)
    expected = []
    for n, name in enumerate(await segment_names(client, scope, stream)):
        batch = [b"%d-%d" % (n, i) for i in range(50)]
        expected += batch
        await append(client, name, *batch)
    group = await group_for(client, scope, stream)
    r1, r2 = await group.create_reader("r1"), await group.create_reader("r2")
    got = await read_n([r1, r2], len(expected))
    assert sorted(got) == sorted(expected)
    state = await group.state()
    assert sorted(len(state.segments_of(r)) for r in ("r1", "r2")) == [2, 2]
    await r1.close()
    await r2.close()


async def test_offline_reader_segments_resume_at_last_position(client: Client) -> None:
    scope, stream = await new_stream(client, 1)
    (name,) = await segment_names(client, scope, stream)
    await append(client, name, *[b"e%d" % i for i in range(10)])
    group = await group_for(client, scope, stream)
    r1 = await group.create_reader("r1")
    assert await read_n([r1], 4) == [b"e0", b"e1", b"e2", b"e3"]
    await r1.close()
    r2 = await group.create_reader("r2")
    assert await read_n([r2], 6) == [b"e%d" % i for i in range(4, 10)]
    await r2.close()


async def test_checkpoint_positions_match_what_was_read(client: Client) -> None:
    scope, stream = await new_stream(client, 2)
    names = await segment_names(client, scope, stream)
    for name in names:
        await append(client, name, b"aaaa", b"bbbb")
    group = await group_for(client, scope, stream)
    reader = await group.create_reader("r1")
    pending = asyncio.ensure_future(group.initiate_checkpoint("cp", timeout=30))
    before: list[bytes] = []
    while True:
        read = await asyncio.wait_for(reader.read_next_event(timeout=0.5), 30)
        if read.checkpoint_name == "cp":
            break
        if read.event is not None:
            before.append(read.event)
    checkpoint = await pending
    assert sum(checkpoint.positions.values()) == 12 * len(before)
    await reader.close()


async def test_reading_between_two_stream_cuts(client: Client) -> None:
    scope, stream = await new_stream(client, 1)
    (name,) = await segment_names(client, scope, stream)
    await append(client, name, b"a", b"b", b"c", b"d")
    seg_id = (await client.controller.get_current_segments(scope, stream))[0].segment_id
    config = ReaderGroupConfig((StreamCut(scope, stream, {seg_id: 9}),), (StreamCut(scope, stream, {seg_id: 27}),),
                               group_refresh_time=FAST)
    group, _ = await create_group(client.controller, client.router, scope, "between", config)
    reader = await group.create_reader("r")
    assert await asyncio.wait_for(_collect(reader), 30) == [b"b", b"c"]


async def _collect(reader: EventStreamReader[Any]) -> list[bytes]:
    return [event async for event in reader]


async def test_reading_across_scales_keeps_successors_after_predecessors(client: Client) -> None:
    """Segment 0 splits into two, which then merge into one: each generation is read after the previous one."""
    scope, stream = await new_stream(client, 1)
    (first,) = await client.controller.get_current_segments(scope, stream)
    await append(client, first.qualified_name, *[b"0-old-%d" % i for i in range(20)])
    split = await client.controller.scale_and_wait(scope, stream, [first.segment_id], [(0.0, 0.5), (0.5, 1.0)])
    for s in split.new_segments:
        await append(client, s.qualified_name, *[b"1-mid%d-%d" % (s.segment_id & 0xFF, i) for i in range(15)])
    merged = await client.controller.scale_and_wait(scope, stream, [s.segment_id for s in split.new_segments],
                                                    [(0.0, 1.0)])
    await append(client, merged.new_segments[0].qualified_name, *[b"2-new-%d" % i for i in range(10)])
    await client.controller.seal_stream(scope, stream)
    group = await group_for(client, scope, stream)
    r1, r2 = await group.create_reader("r1"), await group.create_reader("r2")
    got = await read_n([r1, r2], 60)
    assert len(got) == len(set(got)) == 60
    generations = [int(e[:1]) for e in got]
    assert generations == sorted(generations), "a successor was read before all its predecessors"
    await r1.close()
    await r2.close()


async def test_truncated_data_is_skipped(client: Client) -> None:
    scope, stream = await new_stream(client, 1)
    (name,) = await segment_names(client, scope, stream)
    await append(client, name, b"gone0", b"gone1", b"kept")
    seg_id = (await client.controller.get_current_segments(scope, stream))[0].segment_id
    config = ReaderGroupConfig((StreamCut(scope, stream, {seg_id: 0}),), group_refresh_time=FAST)
    group, _ = await create_group(client.controller, client.router, scope, "trunc", config)
    await client.controller.truncate_stream(StreamCut(scope, stream, {seg_id: 26}))
    reader = await group.create_reader("r")
    assert await read_n([reader], 1) == [b"kept"]
    await reader.close()


async def test_key_value_table_conflicts(client: Client) -> None:
    scope, _ = await new_stream(client, 1)
    await client.controller.create_key_value_table(scope, "kvt", KeyValueTableConfiguration(2, 4, 0))
    table = await KeyValueTable.open(client.controller, client.router, scope, "kvt")
    key = TableKey(b"k001")
    version = await table.put_if_absent(key, b"v1")
    with pytest.raises(VersionConflictError):
        await table.put_if_absent(key, b"v2")
    newer = await table.replace(key, b"v2", version)
    with pytest.raises(VersionConflictError):
        await table.replace(key, b"v3", version)
    assert await table.update_all([Put(TableKey(b"k002"), b"x", NOT_EXISTS)])
    entry = await table.get(key)
    assert entry is not None and (entry.value, entry.version) == (b"v2", newer)
    assert sorted([k.primary async for k, _ in table.iterate_keys()]) == [b"k001", b"k002"]


class JsonList:
    def serialize(self, state: list[int]) -> bytes:
        return json.dumps(state).encode()

    def deserialize(self, data: bytes) -> list[int]:
        return list(json.loads(data))


def appender(value: int) -> Callable[[list[int]], tuple[list[int], None]]:
    return lambda state: ([*state, value], None)


async def test_state_synchronizers_of_two_clients_converge(client: Client, shared_standalone: Standalone) -> None:
    scope, _ = await new_stream(client, 1)
    other_controller = ControllerClient(ClientConfig(controller_uri=shared_standalone.controller_uri))
    other_pool = ConnectionPool()
    try:
        routers = [client.router, SegmentRouter(controller_resolver(other_controller), other_pool)]
        syncs = [
            StateSynchronizer(RevisionedTableClient(TableSegmentClient(r, synchronizer_segment(scope, "sync"))),
                              JsonList())
            for r in routers
        ]
        assert [await s.initialize([]) for s in syncs] == [True, False]

        async def add(sync: StateSynchronizer[list[int]], base: int) -> None:
            for i in range(15):
                await sync.update_state(appender(base + i))

        await asyncio.gather(add(syncs[0], 0), add(syncs[1], 100))
        for s in syncs:
            await s.fetch_updates()
        assert syncs[0].state == syncs[1].state
        assert sorted(syncs[0].state) == list(range(15)) + list(range(100, 115))
    finally:
        await other_pool.close()
        await other_controller.close()


async def test_cli_read_prints_events_until_the_stream_ends(client: Client, shared_standalone: Standalone) -> None:
    scope, stream = await new_stream(client, 2)
    for n, name in enumerate(await segment_names(client, scope, stream)):
        await append(client, name, b"line-%d-a" % n, b"line-%d-b" % n)
    await client.controller.seal_stream(scope, stream)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "anabranch", "read", f"{scope}/{stream}", "--from-head", "--timeout", "20",
        "--controller", shared_standalone.controller_uri,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert sorted(out.decode().splitlines()) == ["line-0-a", "line-0-b", "line-1-a", "line-1-b"]
    assert b"read 4 events" in err


async def test_group_cuts_lag_reset_and_delete(client: Client) -> None:
    scope, stream = await new_stream(client, 2)
    names = await segment_names(client, scope, stream)
    for name in names:
        await append(client, name, b"0123456789", b"abcdefghij")
    group = await group_for(client, scope, stream)
    assert await group.unread_bytes() == 2 * 36
    tail = (await group.get_tail_stream_cuts())[(scope, stream)]
    head = (await group.get_head_stream_cuts())[(scope, stream)]
    assert sorted(tail.positions.values()) == [36, 36] and sorted(head.positions.values()) == [0, 0]
    reader = await group.create_reader("r")
    await read_n([reader], 4)
    await reader.close()
    assert await group.unread_bytes() == 0
    assert (await group.get_stream_cuts())[(scope, stream)] == tail
    await group.reset_to([head])
    again = await group.create_reader("again")
    assert sorted(await read_n([again], 4)) == sorted([b"0123456789", b"abcdefghij"] * 2)
    await again.close()
    await group.delete()
    with pytest.raises(NoSuchReaderGroupError):
        await open_group(client.controller, client.router, scope, group.name)


async def test_a_joining_reader_takes_over_half_the_segments_while_data_flows(client: Client) -> None:
    scope, stream = await new_stream(client, 4)
    names = await segment_names(client, scope, stream)
    group = await group_for(client, scope, stream)
    r1 = await group.create_reader("r1")
    for name in names:
        await append(client, name, b"first")
    assert len(await read_n([r1], 4)) == 4
    r2 = await group.create_reader("r2")
    got: list[bytes] = []

    async def consume(reader: EventStreamReader[Any]) -> None:
        while len(got) < 40:
            read = await reader.read_next_event(timeout=0.1)
            if read.event is not None:
                got.append(read.event)

    async def produce() -> None:
        for i in range(10):
            for name in names:
                await append(client, name, b"%s-%d" % (name.encode(), i))
            await asyncio.sleep(0.05)

    await asyncio.wait_for(asyncio.gather(consume(r1), consume(r2), produce()), 60)
    assert len(got) == len(set(got)) == 40
    state = await group.state()
    assert sorted(len(state.segments_of(r)) for r in ("r1", "r2")) == [2, 2]
    await r1.close()
    await r2.close()


async def test_crashed_reader_declared_offline_resumes_at_its_last_reported_position(client: Client) -> None:
    scope, stream = await new_stream(client, 1)
    (name,) = await segment_names(client, scope, stream)
    await append(client, name, *[b"e%02d" % i for i in range(5)])
    group = await group_for(client, scope, stream)
    crashed = await group.create_reader("crashed")
    assert await read_n([crashed], 5) == [b"e%02d" % i for i in range(5)]
    # waiting at the tail for longer than the refresh time makes the reader report its position
    assert (await crashed.read_next_event(timeout=FAST * 5)).event is None
    assert list((await group.state()).segments_of("crashed").values()) == [5 * 11]
    await append(client, name, *[b"e%02d" % i for i in range(5, 20)])
    await group.reader_offline("crashed")  # as a supervisor does for a reader that died without closing
    survivor = await group.create_reader("survivor")
    assert await read_n([survivor], 15) == [b"e%02d" % i for i in range(5, 20)]
    await survivor.close()
