"""Anabranch's client and the official Pravega client (``pravega_client``) on the same streams.

Each test does one half with Anabranch's client in the test's event loop and the other half with official-client
scenarios (official_scenarios.py, each in its own process under a hard deadline): what one client writes the
other reads with no loss, no duplicates and per-key order (across scales, while the other still writes, for event
sizes from 0 bytes to beyond 8 MiB); both put a routing key in the same segment; both report the same stream cuts;
transactions (also ones opened before a scale) have the same outcome for both, and their ids agree; stream
policies and tags, truncation and sealing are seen alike; byte streams round-trip.

Events are ``tag|key|number`` so that a reader can tell who wrote an event, with which routing key, and in
which order. Known limits of the official client (pravega 0.3.8) that the tests work around: its reader stalls
for good on an empty event, and ``get_txn`` returns a handle that cannot write or commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from official_scenarios import digest, pattern
from test_official_client import run_official, unique

from anabranch.client import (
    EventRead,
    EventStreamWriter,
    ReaderGroup,
    ReaderGroupConfig,
    RetentionPolicy,
    ScalingPolicy,
    StreamConfiguration,
    StreamCut,
    StreamManager,
    TxnState,
)
from anabranch.client.hashing import StreamSegments
from anabranch.client.reader_group import segment_info
from anabranch.model.names import qualified_segment_name
from anabranch.testing.processes import Standalone

pytestmark = [pytest.mark.compat, pytest.mark.process, pytest.mark.timeout(180)]

KEYS = [f"key-{i}" for i in range(29)] + ["", "ключ", "clé-é", "emoji-😀"]
"""Routing keys, with the empty key and non-ASCII keys (whose hashing differs between Java and Rust)."""
READ_TIMEOUT = 60.0


async def official(server: Standalone, name: str, deadline: float = 120.0, **args: Any) -> dict[str, Any]:
    """Runs an official-client scenario without blocking the test's event loop."""
    return await asyncio.to_thread(run_official, server, name, deadline, **args)


def parse(event: str) -> tuple[str, str, int]:
    tag, key, number = event.split("|")
    return tag, key, int(number)


def check_complete_and_ordered(events: Iterable[str], expected: Mapping[str, int]) -> None:
    """Each tag has events 0..n-1 exactly once, and the events of one writer and one key are in order."""
    events = list(events)
    duplicates = sorted(e for e, n in Counter(events).items() if n > 1)
    assert not duplicates, f"duplicated events: {duplicates[:10]}"
    numbers: dict[str, list[int]] = defaultdict(list)
    last: dict[tuple[str, str], int] = {}
    for event in events:
        tag, key, number = parse(event)
        numbers[tag].append(number)
        assert last.get((tag, key), -1) < number, f"{tag}: key {key!r} out of order at {number}"
        last[(tag, key)] = number
    assert {tag: sorted(n) for tag, n in numbers.items()} == {tag: list(range(n)) for tag, n in expected.items()}


def framed_size(events: Iterable[str]) -> int:
    """Bytes the events take in segments: an 8-byte header plus the payload each."""
    return sum(8 + len(e.encode()) for e in events)


def cut_map(positions: Mapping[int, int]) -> dict[str, int]:
    return {str(segment): offset for segment, offset in positions.items()}


async def new_streams(manager: StreamManager, scope: str, segments: Mapping[str, int]) -> None:
    await manager.create_scope(scope)
    for stream, count in segments.items():
        await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(count)))


async def write_tagged(writer: EventStreamWriter[Any], tag: str, count: int) -> None:
    """``count`` events ``tag|key|i`` with routing key ``KEYS[i % len(KEYS)]``, all acknowledged."""
    for i in range(count):
        key = KEYS[i % len(KEYS)]
        await writer.write_event(f"{tag}|{key}|{i}".encode(), routing_key=key)
    await writer.flush()


async def write_ours(manager: StreamManager, scope: str, stream: str, tag: str, count: int) -> None:
    writer = manager.create_writer(scope, stream)
    await write_tagged(writer, tag, count)
    await writer.close()


async def read_ours(manager: StreamManager, scope: str, streams: list[str] | ReaderGroupConfig, group: str,
                    expected: int) -> tuple[ReaderGroup, Any, list[EventRead[bytes]]]:
    """Reads ``expected`` events with a new reader group (from the heads of ``streams``, or as configured), then
    checks that nothing more comes."""
    config = streams if isinstance(streams, ReaderGroupConfig) else ReaderGroupConfig.for_streams(scope, *streams)
    rg = await manager.create_reader_group(scope, group, config)
    reader = await rg.create_reader("r1")
    reads: list[EventRead[bytes]] = []

    async def collect() -> None:
        while len(reads) < expected:
            read = await reader.read_next_event(timeout=5)
            if read.event is not None:
                reads.append(read)

    await asyncio.wait_for(collect(), READ_TIMEOUT)
    extra = await reader.read_next_event(timeout=0.5)
    assert extra.event is None, f"unexpected event after all {expected}: {extra.event!r}"
    return rg, reader, reads


def texts(reads: Iterable[EventRead[bytes]]) -> list[str]:
    return [bytes(r.event or b"").decode() for r in reads]


async def test_events_cross_read_same_segments_and_same_stream_cut(shared_standalone: Standalone) -> None:
    """Both clients write keyed events into one 4-segment stream; each reads the other's events."""
    scope, stream, count = unique("xev"), "s", 600
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {stream: 4})
        await write_ours(manager, scope, stream, "ours", count)
        out = await official(shared_standalone, "cross_events", scope=scope, stream=stream, keys=KEYS, count=count,
                             expected=2 * count, group="rg-official")
        check_complete_and_ordered(out["events"], {"ours": count, "theirs": count})

        rg, reader, reads = await read_ours(manager, scope, [stream], "rg-ours", 2 * count)
        events = texts(reads)
        check_complete_and_ordered(events, {"ours": count, "theirs": count})

        segments = StreamSegments(await manager.get_current_segments(scope, stream))
        placed: dict[tuple[str, str], set[int]] = defaultdict(set)
        for event, read in zip(events, reads, strict=True):
            tag, key, _ = parse(event)
            assert read.segment is not None
            placed[(tag, key)].add(read.segment.segment_id)
        for key in KEYS:
            home = {segments.segment_for_key(key).segment_id}
            assert placed[("ours", key)] == home, f"our writer put {key!r} elsewhere"
            assert placed[("theirs", key)] == home, f"the official writer put {key!r} in another segment"
        assert len({s for ids in placed.values() for s in ids}) == 4, "the keys should cover every segment"

        tail = (await rg.get_tail_stream_cuts())[(scope, stream)]
        assert sum(tail.positions.values()) == framed_size(events)
        assert out["cut"] == cut_map(tail.positions), "official group's cut after reading all != our tail cut"
        await reader.close()
        ours = (await rg.get_stream_cuts())[(scope, stream)]
        assert cut_map(ours.positions) == out["cut"], "the two groups' cuts after reading everything differ"
        await manager.delete_reader_group(scope, "rg-ours")

        later = 60
        await write_ours(manager, scope, stream, "later", later)
        start = StreamCut(scope, stream, {int(segment): offset for segment, offset in out["cut"].items()})
        _, reader, reads = await read_ours(manager, scope, ReaderGroupConfig((start,)), "rg-from-cut", later)
        check_complete_and_ordered(texts(reads), {"later": later})
        await reader.close()


def check_phases(events: list[str], per_phase: int, phases: int) -> None:
    """Complete and ordered per writer, and per key no event of a phase after an event of a later phase."""
    check_complete_and_ordered(events, {f"p{i}": per_phase for i in range(phases)})
    phase_of: dict[str, int] = {}
    for event in events:
        tag, key, _ = parse(event)
        phase = int(tag[1:])
        assert phase_of.get(key, 0) <= phase, f"key {key!r}: a {tag} event after a p{phase_of[key]} event"
        phase_of[key] = phase


async def test_reading_across_scale_events_of_both_writers(shared_standalone: Standalone) -> None:
    """Our writer, a split, the official writer, a merge, our writer again; both readers follow the successors
    and keep each key's events in the order they were written."""
    scope, stream, per_phase = unique("xsc"), "s", 200
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {stream: 2})
        writer = manager.create_writer(scope, stream)
        await write_tagged(writer, "p0", per_phase)
        split = await manager.controller.scale_and_wait(scope, stream, [0], [(0.0, 0.25), (0.25, 0.5)])
        await official(shared_standalone, "write_events", scope=scope, stream=stream, tag="p1", keys=KEYS,
                       count=per_phase)
        await manager.controller.scale_and_wait(scope, stream, [s.segment_id for s in split.new_segments],
                                                [(0.0, 0.5)])
        await write_tagged(writer, "p2", per_phase)
        await writer.close()

        out = await official(shared_standalone, "read_all", scope=scope, stream=stream, expected=3 * per_phase,
                             group="rg-official")
        check_phases(out["events"], per_phase, 3)
        _, reader, reads = await read_ours(manager, scope, [stream], "rg-ours", 3 * per_phase)
        check_phases(texts(reads), per_phase, 3)
        await reader.close()


async def wait_for_state(manager: StreamManager, scope: str, stream: str, txn_id: uuid.UUID,
                         final: TxnState) -> None:
    """Waits (bounded) until the controller reports the transaction in its final state."""

    async def poll() -> None:
        while await manager.controller.check_transaction_state(scope, stream, txn_id) != final:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), 30)


async def test_transaction_outcomes_agree(shared_standalone: Standalone) -> None:
    """Each client commits one transaction and aborts another; both readers see exactly the committed events."""
    scope, stream, count = unique("xtx"), "s", 40
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {stream: 2})
        txn_writer = manager.create_transactional_writer(scope, stream)
        committed = await txn_writer.begin_txn()
        aborted = await txn_writer.begin_txn()
        for i in range(count):
            key = KEYS[i % len(KEYS)]
            await committed.write_event(f"ours-commit|{key}|{i}".encode(), routing_key=key)
            await aborted.write_event(f"ours-abort|{key}|{i}".encode(), routing_key=key)
        await committed.commit()
        await aborted.abort()

        out = await official(shared_standalone, "cross_transactions", scope=scope, stream=stream, keys=KEYS,
                             count=count, expected=2 * count, group="rg-official")
        expected = {"ours-commit": count, "theirs-commit": count}
        check_complete_and_ordered(out["events"], expected)

        _, reader, reads = await read_ours(manager, scope, [stream], "rg-ours", 2 * count)
        check_complete_and_ordered(texts(reads), expected)
        await reader.close()

        await wait_for_state(manager, scope, stream, committed.txn_id, TxnState.COMMITTED)
        await wait_for_state(manager, scope, stream, aborted.txn_id, TxnState.ABORTED)
        await wait_for_state(manager, scope, stream, uuid.UUID(int=int(out["committed"])), TxnState.COMMITTED)
        await wait_for_state(manager, scope, stream, uuid.UUID(int=int(out["aborted"])), TxnState.ABORTED)
        await txn_writer.close()


async def test_official_reader_group_with_config_over_two_streams(shared_standalone: Standalone) -> None:
    """``create_reader_group_with_config`` over two streams written by our writer, from the head and the tail."""
    scope, count, tail_count = unique("xrg"), 120, 10
    streams = {"two": 2, "three": 3}
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, streams)
        for stream in streams:
            await write_ours(manager, scope, stream, f"ours-{stream}", count)

        out = await official(shared_standalone, "config_reader_group", scope=scope, streams=list(streams),
                             expected=count * len(streams), tail_count=tail_count, group="rg-multi")
        check_complete_and_ordered(out["events"], {f"ours-{s}": count for s in streams})
        assert sorted(out["tail_events"]) == sorted(
            f"tail-{s}|{'abc'[i % 3]}|{i}" for s in streams for i in range(tail_count))

        _, reader, reads = await read_ours(manager, scope, list(streams), "rg-ours",
                                           (count + tail_count) * len(streams))
        events = texts(reads)
        check_complete_and_ordered([e for e in events if e.startswith("ours")], {f"ours-{s}": count for s in streams})
        assert sorted(e for e in events if e.startswith("tail")) == sorted(out["tail_events"])
        await reader.close()


async def test_byte_streams_cross_read(shared_standalone: Standalone) -> None:
    """Our byte-stream writer → the official ByteStream, and the official ByteStream → our reader."""
    scope, ours_size, theirs_size, truncate_at = unique("xbs"), 300_000, 250_000, 1000
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {"ours": 1, "theirs": 1})
        ours = pattern("ours", ours_size)
        writer = await manager.create_byte_stream_writer(scope, "ours")
        for start in range(0, ours_size, 70_000):
            await writer.write(ours[start:start + 70_000])
        await writer.flush()

        out = await official(shared_standalone, "cross_byte_streams", scope=scope, write_stream="theirs",
                             read_stream="ours", seed="theirs", size=theirs_size, truncate_at=truncate_at)
        assert out["read_tail"] == ours_size and out["read_size"] == ours_size
        assert out["read_sha256"] == hashlib.sha256(ours).hexdigest()
        assert out["written"] == theirs_size and out["tail_written"] == theirs_size
        assert out["read_head_after_truncate"] == truncate_at

        reader = await manager.create_byte_stream_reader(scope, "theirs")
        assert (await reader.head_offset(), await reader.tail_offset()) == (0, theirs_size)
        data = await asyncio.wait_for(reader.read_exactly(theirs_size), READ_TIMEOUT)
        assert data == pattern("theirs", theirs_size)

        truncated = await manager.create_byte_stream_reader(scope, "ours")
        assert await truncated.head_offset() == truncate_at
        assert truncated.tell() == truncate_at
        assert await asyncio.wait_for(truncated.read_exactly(100), READ_TIMEOUT) == ours[truncate_at:truncate_at + 100]
        await writer.close()


async def test_truncation_and_seal_seen_by_both(shared_standalone: Standalone) -> None:
    """We truncate at our tail cut, the official client writes and reads from the (new) head; after we seal,
    our reader ends exactly after the official client's events."""
    scope, stream, old, new = unique("xtr"), "s", 60, 40
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {stream: 3})
        await write_ours(manager, scope, stream, "old", old)
        rg = await manager.create_reader_group(scope, "rg-cut", ReaderGroupConfig.for_streams(scope, stream))
        tail = (await rg.get_tail_stream_cuts())[(scope, stream)]
        await manager.truncate_stream(tail)
        assert await manager.get_head_stream_cut(scope, stream) == tail

        await official(shared_standalone, "write_events", scope=scope, stream=stream, tag="new", keys=KEYS,
                       count=new)
        out = await official(shared_standalone, "read_all", scope=scope, stream=stream, expected=new,
                             group="rg-official")
        check_complete_and_ordered(out["events"], {"new": new})

        await manager.seal_stream(scope, stream)
        group = await manager.create_reader_group(scope, "rg-ours", ReaderGroupConfig.for_streams(scope, stream))
        reader = await group.create_reader("r1")

        async def read_to_end() -> list[str]:
            return [bytes(event).decode() async for event in reader]

        check_complete_and_ordered(await asyncio.wait_for(read_to_end(), READ_TIMEOUT), {"new": new})
        await reader.close()


async def test_transaction_ids_agree(shared_standalone: Standalone) -> None:
    """The official client sees our open transaction by its integer id; we write into and commit a transaction the
    official client opened (its id as a UUID); both then see both transactions committed."""
    scope, stream, count = unique("xid"), "s", 30
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {stream: 3})
        txn_writer = manager.create_transactional_writer(scope, stream)
        ours = await txn_writer.begin_txn()
        out = await official(shared_standalone, "txn_states", scope=scope, stream=stream,
                             ids=[str(ours.txn_id.int)], begin=True)
        assert out["open"] == [True]
        theirs = await txn_writer.get_txn(uuid.UUID(int=int(out["begun"])))
        for txn, tag in ((ours, "ours"), (theirs, "theirs")):
            for i in range(count):
                key = KEYS[i % len(KEYS)]
                await txn.write_event(f"{tag}|{key}|{i}".encode(), routing_key=key)
            await txn.commit()
            await wait_for_state(manager, scope, stream, txn.txn_id, TxnState.COMMITTED)
        await txn_writer.close()

        after = await official(shared_standalone, "txn_states", scope=scope, stream=stream,
                               ids=[str(ours.txn_id.int), out["begun"]])
        assert after["open"] == [False, False]
        read = await official(shared_standalone, "read_all", scope=scope, stream=stream, expected=2 * count,
                              group="rg-official")
        check_complete_and_ordered(read["events"], {"ours": count, "theirs": count})


async def segment_length(manager: StreamManager, scope: str, stream: str, segment_id: int) -> int:
    info = await segment_info(manager.router, qualified_segment_name(scope, stream, segment_id))
    assert info is not None
    return info.write_offset


async def wait_for_growth(manager: StreamManager, scope: str, stream: str, segment_id: int, length: int,
                          writer: asyncio.Future[Any]) -> None:
    """Waits (bounded) until a segment holds at least ``length`` bytes while ``writer`` still runs."""

    async def poll() -> None:
        while await segment_length(manager, scope, stream, segment_id) < length:
            assert not writer.done(), f"the official writer ended before the segment reached {length} bytes"
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), 60)


async def test_scale_while_both_clients_write(shared_standalone: Standalone) -> None:
    """Both writers are mid-stream when a segment is split: appends racing the seal move to the successors
    without loss, duplicates or reordering per key, and both readers see the same events."""
    scope, stream, count = unique("xls"), "s", 6000
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {stream: 2})
        writer = manager.create_writer(scope, stream)
        for i in range(count // 2):
            key = KEYS[i % len(KEYS)]
            await writer.write_event(f"ours|{key}|{i}".encode(), routing_key=key)
        await writer.flush()
        ours_only = await segment_length(manager, scope, stream, 0)
        theirs = asyncio.ensure_future(official(shared_standalone, "write_events", scope=scope, stream=stream,
                                                tag="theirs", keys=KEYS, count=count, inflight=20))
        await wait_for_growth(manager, scope, stream, 0, ours_only + 20_000, theirs)
        scaling = asyncio.ensure_future(manager.controller.scale_and_wait(scope, stream, [0],
                                                                          [(0.0, 0.25), (0.25, 0.5)]))
        for i in range(count // 2, count):
            key = KEYS[i % len(KEYS)]
            await writer.write_event(f"ours|{key}|{i}".encode(), routing_key=key)
        await scaling
        await writer.close()
        await theirs

        expected = {"ours": count, "theirs": count}
        out = await official(shared_standalone, "read_all", scope=scope, stream=stream, expected=2 * count,
                             group="rg-official")
        check_complete_and_ordered(out["events"], expected)
        _, reader, reads = await read_ours(manager, scope, [stream], "rg-ours", 2 * count)
        check_complete_and_ordered(texts(reads), expected)
        await reader.close()
        theirs_in = {r.segment.segment_id for r, e in zip(reads, texts(reads), strict=True)
                     if e.startswith("theirs") and r.segment is not None}
        assert {0, 1} <= theirs_in and theirs_in - {0, 1}, "the official writer did not cross the scale"


async def test_live_reading_while_the_other_client_writes(shared_standalone: Standalone) -> None:
    """Each client reads at the tail while the other one is still writing (reads wait for data at the tail)."""
    scope, stream, count, chunk = unique("xlive"), "s", 3000, 100
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {stream: 3})
        group = await manager.create_reader_group(scope, "rg-ours", ReaderGroupConfig.for_streams(scope, stream))
        reader = await group.create_reader("r1")
        theirs = asyncio.ensure_future(official(shared_standalone, "cross_events", scope=scope, stream=stream,
                                                keys=KEYS, count=count, expected=2 * count, group="rg-official",
                                                cut=False))
        reads: list[EventRead[bytes]] = []

        async def read() -> None:
            while len(reads) < 2 * count:
                got = await reader.read_next_event(timeout=5)
                if got.event is not None:
                    reads.append(got)

        async def write() -> None:
            writer = manager.create_writer(scope, stream)
            for start in range(0, count, chunk):
                for i in range(start, start + chunk):
                    key = KEYS[i % len(KEYS)]
                    await writer.write_event(f"ours|{key}|{i}".encode(), routing_key=key)
                await writer.flush()
            await writer.close()

        await asyncio.wait_for(asyncio.gather(read(), write()), READ_TIMEOUT)
        expected = {"ours": count, "theirs": count}
        check_complete_and_ordered(texts(reads), expected)
        check_complete_and_ordered((await theirs)["events"], expected)
        await reader.close()


async def test_stream_configurations_agree(shared_standalone: Standalone) -> None:
    """Policies and tags set by one client read back identically by the other."""
    scope = unique("xcfg")
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, "ours", StreamConfiguration(ScalingPolicy.fixed(2), tags=("x", "y")))
        out = await official(shared_standalone, "stream_configs", scope=scope, ours="ours")
        assert sorted(out["tags"]) == ["x", "y"]
        assert out["streams"] == ["by-bytes", "by-events", "fixed", "ours"]

        events = await manager.get_stream_configuration(scope, "by-events")
        assert events.scaling == ScalingPolicy.by_event_rate(100, 2, 3)
        assert events.retention == RetentionPolicy.by_time(3_600_000)
        assert sorted(events.tags) == ["a", "b"]
        size = await manager.get_stream_configuration(scope, "by-bytes")
        assert size.scaling == ScalingPolicy.by_data_rate(1024, 3, 2)
        assert size.retention == RetentionPolicy.by_size(1 << 30)
        assert size.tags == ()
        fixed = await manager.get_stream_configuration(scope, "fixed")
        assert fixed.scaling == ScalingPolicy.fixed(4) and fixed.retention == RetentionPolicy.none()
        counts = [len(await manager.get_current_segments(scope, s)) for s in ("by-events", "by-bytes", "fixed")]
        assert counts == [3, 2, 4]


SIZES = [0, 1, 7, 8, 9, 0, 100, 4096, 65_536, 1 << 20, (8 << 20) - 8, 8 << 20, (8 << 20) + 1, 3]
"""Event sizes around the framing header (8 bytes) and the largest event of one append (8 MiB)."""


async def test_event_sizes_from_empty_to_beyond_8_mib(shared_standalone: Standalone) -> None:
    """Each client reads the other's events of every size, in order. Empty events only go official → ours: the
    official reader (pravega 0.3.8) stalls for good on an empty event, whoever wrote it."""
    scope, key = unique("xsz"), "sized"
    not_empty = [s for s in SIZES if s]
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {"to-official": 2, "to-ours": 2})
        ours = [pattern(f"ours-{i}", size) for i, size in enumerate(not_empty)]
        writer = manager.create_writer(scope, "to-official")
        for event in ours:
            await writer.write_event(event, routing_key=key)
        await writer.close()

        out = await official(shared_standalone, "sized_events", scope=scope, write_stream="to-ours",
                             read_stream="to-official", seed="theirs", sizes=SIZES, key=key, expected=len(ours),
                             group="rg-official")
        assert out["events"] == [digest(e) for e in ours]
        _, reader, reads = await read_ours(manager, scope, ["to-ours"], "rg-ours", len(SIZES))
        theirs = [digest(pattern(f"theirs-{i}", s)) for i, s in enumerate(SIZES)]
        assert [digest(bytes(r.event if r.event is not None else b"")) for r in reads] == theirs
        await reader.close()


async def test_transactions_committed_after_a_scale(shared_standalone: Standalone) -> None:
    """Transactions of both clients opened before a scale and committed after it: every event is visible once,
    in order per key, to both readers."""
    scope, stream, count = unique("xts"), "s", 60
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await new_streams(manager, scope, {stream: 2})
        txn_writer = manager.create_transactional_writer(scope, stream)
        ours = await txn_writer.begin_txn()
        for i in range(count):
            key = KEYS[i % len(KEYS)]
            await ours.write_event(f"ours|{key}|{i}".encode(), routing_key=key)
        await ours.flush()

        out = await official(shared_standalone, "txn_across_scale", scope=scope, stream=stream, keys=KEYS,
                             count=count, split=1, range=[0.5, 1.0], expected=count, group="rg-official")
        assert out["new_segments"] == [(1 << 32) | 2, (1 << 32) | 3]
        check_complete_and_ordered(out["events"], {"theirs": count})
        await ours.commit()
        await wait_for_state(manager, scope, stream, ours.txn_id, TxnState.COMMITTED)
        await wait_for_state(manager, scope, stream, uuid.UUID(int=int(out["txn_id"])), TxnState.COMMITTED)
        await txn_writer.close()

        expected = {"ours": count, "theirs": count}
        _, reader, reads = await read_ours(manager, scope, [stream], "rg-ours", 2 * count)
        check_complete_and_ordered(texts(reads), expected)
        await reader.close()
        read = await official(shared_standalone, "read_all", scope=scope, stream=stream, expected=2 * count,
                              group="rg-official-2")
        check_complete_and_ordered(read["events"], expected)
