"""Anabranch's client and the official Pravega client (``pravega_client``) on the same streams.

Each test does one half with Anabranch's client in the test's event loop and the other half with one
official-client scenario (official_scenarios.py, in its own process under a hard deadline): what one client
writes the other reads with no loss, no duplicates and per-key order; both put a routing key in the same
segment; both report the same stream cuts and see the same transaction outcomes; byte streams round-trip.

Events are ``tag|key|number`` so that a reader can tell who wrote an event, with which routing key, and in
which order.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from official_scenarios import pattern
from test_official_client import run_official, unique

from anabranch.client import (
    EventRead,
    ReaderGroup,
    ReaderGroupConfig,
    ScalingPolicy,
    StreamConfiguration,
    StreamManager,
    TxnState,
)
from anabranch.client.hashing import StreamSegments
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


async def write_ours(manager: StreamManager, scope: str, stream: str, tag: str, count: int) -> None:
    """``count`` events ``tag|key|i`` with routing key ``KEYS[i % len(KEYS)]``, all acknowledged."""
    writer = manager.create_writer(scope, stream)
    for i in range(count):
        key = KEYS[i % len(KEYS)]
        await writer.write_event(f"{tag}|{key}|{i}".encode(), routing_key=key)
    await writer.close()


async def read_ours(manager: StreamManager, scope: str, streams: list[str], group: str,
                    expected: int) -> tuple[ReaderGroup, Any, list[EventRead[bytes]]]:
    """Reads ``expected`` events with a new reader group (from the heads), then checks that nothing more comes."""
    rg = await manager.create_reader_group(scope, group, ReaderGroupConfig.for_streams(scope, *streams))
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
