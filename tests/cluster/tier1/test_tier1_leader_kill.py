"""Failures of the NATS cluster under a writing log: SIGKILL of the node leading the container's stream (a new owner
opens once JetStream elected a new stream leader, 4-9 s, and every acked record is there), and every node frozen
(pending appends fail-stop within the acknowledgement timeout)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anabranch.cluster.nats_server import NatsCluster
from anabranch.storage.interfaces import LogClosedError
from anabranch.storage.jetstream_log import JetStreamDurableDataLog
from anabranch.storage.log_errors import Tier1UnavailableError
from anabranch.testing.log_conformance import read_all
from tests.cluster.tier1.tier1_helpers import Owners

pytestmark = [pytest.mark.process, pytest.mark.cluster]
log = logging.getLogger(__name__)

FAILOVER_DEADLINE = 75.0


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A cluster of its own: this test kills a node."""
    cluster = NatsCluster(tmp_path / "nats", nodes=3)
    cluster.start(timeout=60)
    try:
        yield cluster
    finally:
        cluster.stop()


async def open_when_possible(keeper: Owners, deadline: float) -> JetStreamDurableDataLog:
    """Open a new owner, retrying (each try is a new epoch, as a segment store does) until the deadline."""
    while True:
        try:
            return await keeper.open()
        except (Tier1UnavailableError, LogClosedError) as exc:
            if time.monotonic() > deadline:
                raise
            log.info("new owner cannot open yet: %s", exc)
            await asyncio.sleep(0.2)


async def test_killing_the_stream_leader_loses_no_acked_record(own_cluster: NatsCluster) -> None:
    keeper = Owners(own_cluster.urls, ack_timeout=5.0, request_timeout=3.0)
    try:
        writer_log = await keeper.open()
        acked: dict[int, bytes] = {}
        stop = asyncio.Event()

        async def writer(lane: int) -> None:
            i = 0
            while not stop.is_set():
                payload = b"%d-%d-" % (lane, i) + b"p" * 1000
                i += 1
                try:
                    acked[await writer_log.append(payload)] = payload
                except LogClosedError:
                    return

        writers = [asyncio.create_task(writer(lane)) for lane in range(4)]
        while len(acked) < 300:
            await asyncio.sleep(0.01)
        leader = await asyncio.to_thread(own_cluster.leader_of, keeper.stream)
        await asyncio.to_thread(own_cluster.kill, leader)
        killed_at = time.monotonic()
        acked_at_kill = len(acked)

        # as a segment store taking the container over would: a new owner opens while the old one still writes
        successor = await open_when_possible(keeper, time.monotonic() + FAILOVER_DEADLINE)
        reopened_after = time.monotonic() - killed_at
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), writer_log.ack_timeout + 5)
        await writer_log.close()
        recovered = dict(await read_all(successor))
        lost = [seq for seq, payload in acked.items() if recovered.get(seq) != payload]
        assert not lost, f"{len(lost)} acked records lost, e.g. {lost[:5]}"
        assert sorted(recovered) == list(range(1, len(recovered) + 1))
        assert await successor.append(b"after the failover") == len(recovered) + 1
        print(f"\nleader n{leader + 1} killed with {acked_at_kill} records acked ({len(acked)} by the end); "
              f"a new owner opened {reopened_after:.1f} s later and recovered all {len(recovered)}")
    finally:
        await keeper.cleanup()


async def test_unanswered_appends_fail_stop_within_the_ack_timeout(own_cluster: NatsCluster) -> None:
    """Every node frozen (SIGSTOP): no acknowledgement comes, so every pending append fails with LogClosedError
    after ``ack_timeout`` and the log stays closed; once the nodes run again a new owner recovers every acked
    record."""
    keeper = Owners(own_cluster.urls, ack_timeout=1.5, request_timeout=3.0)
    frozen: list[int] = []
    try:
        writer_log = await keeper.open()
        acked = [await writer_log.append(b"before-%d" % i) for i in range(20)]
        frozen = [pid for pid in own_cluster.pids if pid is not None]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        results = await asyncio.wait_for(
            asyncio.gather(*(writer_log.append(b"during-%d" % i) for i in range(10)), return_exceptions=True), 10)
        waited = time.monotonic() - started
        assert all(isinstance(r, LogClosedError) for r in results), results
        assert 1.0 < waited < 5.0, f"pending appends failed after {waited:.1f} s"
        assert "not acknowledged within 1.5 s" in str(results[0])
        with pytest.raises(LogClosedError):
            await writer_log.append(b"after")
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        frozen = []
        await writer_log.close()
        successor = await open_when_possible(keeper, time.monotonic() + FAILOVER_DEADLINE)
        recovered = await read_all(successor)
        assert [seq for seq, _ in recovered[:20]] == acked
        assert all(payload.startswith(b"during-") for _, payload in recovered[20:])  # landed, never acked
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        await keeper.cleanup()
