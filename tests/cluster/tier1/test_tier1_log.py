"""The JetStream Tier-1 log on a real 3-node NATS cluster: truncation purges the stream, records above one message
are split and reassembled (a torn one is skipped), size limits, and a clear error when NATS is unreachable."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from anabranch.cluster.nats_server import NatsCluster
from anabranch.storage.interfaces import LogClosedError
from anabranch.storage.jetstream_log import JetStreamDurableDataLog
from anabranch.storage.jetstream_log_format import (
    EXPECTED_LAST_HEADER,
    MAX_MESSAGE_DATA,
    epoch_subject,
    record_headers,
)
from anabranch.storage.log_errors import RecordTooLargeError, Tier1UnavailableError
from anabranch.testing.log_conformance import read_all
from anabranch.testing.processes import free_port
from tests.cluster.tier1.tier1_helpers import owners, raw_messages

pytestmark = [pytest.mark.process, pytest.mark.cluster]


async def stream_state(servers: list[str], stream: str) -> tuple[int, int, int]:
    """(first sequence, last sequence, message count) of a stream."""
    client = await nats.connect(servers=servers, connect_timeout=2, max_reconnect_attempts=1)
    try:
        state = (await client.jetstream(timeout=10).stream_info(stream)).state
        return state.first_seq, state.last_seq, state.messages
    finally:
        await client.close()


async def test_truncate_purges_the_stream_and_keeps_later_records(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        log = await keeper.open()
        for i in range(50):
            await log.append(b"r%d" % i)
        assert await stream_state(nats_cluster.urls, keeper.stream) == (1, 51, 51)  # marker + 50
        await log.truncate(30)
        first, last, count = await stream_state(nats_cluster.urls, keeper.stream)
        assert (first, last, count) == (32, 51, 20)
        await log.close()
        reader = await keeper.open()
        assert await read_all(reader) == [(seq, b"r%d" % (seq - 1)) for seq in range(31, 51)]
        assert await reader.append(b"next") == 51


async def test_truncating_everything_keeps_the_last_message_and_the_sequence(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        log = await keeper.open()
        for i in range(10):
            await log.append(b"r%d" % i)
        await log.truncate(10)
        assert (await stream_state(nats_cluster.urls, keeper.stream))[2] == 1
        await log.close()
        reader = await keeper.open()
        assert await read_all(reader, after=10) == []
        assert await reader.append(b"after") == 11
        await reader.truncate(11)
        await reader.close()
        assert await read_all(await keeper.open(), after=10) == [(11, b"after")]


async def test_truncating_records_of_an_earlier_owner_after_recovery(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        log = await keeper.open()
        for i in range(20):
            await log.append(b"r%d" % i)
        await log.close()
        owner = await keeper.open()
        assert len(await read_all(owner)) == 20  # recovery learns where each record ends
        await owner.truncate(15)
        await owner.close()
        assert [seq for seq, _ in await read_all(await keeper.open())] == [16, 17, 18, 19, 20]


async def test_records_larger_than_a_message_are_split_and_reassembled(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        log = await keeper.open()
        big = bytes(range(256)) * (3 * 4096 + 17)  # 3 MiB + 4352 bytes: 4 messages
        exact = b"e" * MAX_MESSAGE_DATA
        sequences = await asyncio.gather(log.append(b"small"), log.append(memoryview(big)), log.append(exact),
                                         log.append([b"x" * MAX_MESSAGE_DATA, b"y"]), log.append(b"tail"))
        assert sequences == [1, 2, 3, 4, 5]
        await log.close()
        stored = await raw_messages(nats_cluster.urls, keeper.stream)
        assert [m.parts for _, m, _ in stored if not m.marker] == [1, 4, 4, 4, 4, 1, 2, 2, 1]
        reader = await keeper.open()
        assert await read_all(reader) == [(1, b"small"), (2, big), (3, exact),
                                          (4, b"x" * MAX_MESSAGE_DATA + b"y"), (5, b"tail")]
        await reader.truncate(2)
        await reader.close()
        assert [seq for seq, _ in await read_all(await keeper.open())] == [3, 4, 5]


async def test_a_record_torn_mid_split_is_skipped_and_its_sequence_never_reused(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        log = await keeper.open()
        await log.append(b"whole")
        # the owner crashes after the first of two pieces of record 2 landed
        client = await nats.connect(servers=nats_cluster.urls)
        try:
            headers = {**record_headers(log.epoch, 2, 1, 2), EXPECTED_LAST_HEADER: "2"}
            ack = await client.jetstream(timeout=10).publish(epoch_subject(keeper.prefix, 0, log.epoch), b"half",
                                                             headers=headers)
            assert ack.seq == 3
        finally:
            await client.close()
        successor = await keeper.open()
        assert await read_all(successor) == [(1, b"whole")]
        assert await successor.append(b"next") == 3


async def test_a_record_over_the_limit_is_refused_and_the_log_stays_usable(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls, max_record_size=2 * 1024 * 1024) as keeper:
        log = await keeper.open()
        assert await log.append(b"before") == 1
        with pytest.raises(RecordTooLargeError, match=r"record of 2097153 bytes exceeds the log's limit of 2097152"):
            await log.append(b"z" * (2 * 1024 * 1024 + 1))
        assert await log.append(b"a" * (2 * 1024 * 1024)) == 2
        assert await log.append(b"after") == 3
        await log.close()
        assert [seq for seq, _ in await read_all(await keeper.open())] == [1, 2, 3]


async def test_unreachable_nats_at_open_is_one_clear_error() -> None:
    servers = [f"nats://127.0.0.1:{free_port()}", f"nats://127.0.0.1:{free_port()}"]
    log = JetStreamDurableDataLog(0, servers, 1, stream_prefix="nowhere", connect_timeout=5.0)
    started = time.monotonic()
    with pytest.raises(Tier1UnavailableError) as refused:
        await log.open()
    assert time.monotonic() - started < 5.0
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"Tier-1 (NATS JetStream) at {servers[0]},{servers[1]} is not reachable")
    assert refused.value.retriable


async def test_append_and_recovery_need_an_open_log(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        log = keeper.new()
        with pytest.raises(LogClosedError, match=r"is closed"):
            await log.append(b"x")
        await log.open()
        await log.close()
        with pytest.raises(LogClosedError, match=r"new owner must open a new log"):
            await log.open()
