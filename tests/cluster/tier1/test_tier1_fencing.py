"""Fencing of the JetStream Tier-1 log on a real 3-node NATS cluster: once a newer owner opened the log, an older
owner (a zombie) can append nothing, however it pipelines, is closed for good, and recovery never returns its
refused writes; an owner with an older epoch cannot even open."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from anabranch.cluster.nats_server import NatsCluster
from anabranch.storage.interfaces import LogClosedError
from anabranch.storage.log_errors import LogFencedError
from anabranch.testing.log_conformance import read_all
from tests.cluster.tier1.tier1_helpers import assert_epochs_never_decrease, owners, raw_messages

pytestmark = [pytest.mark.process, pytest.mark.cluster]


async def test_zombie_pipelined_appends_after_the_fence_are_all_rejected(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        zombie = await keeper.open()
        acked = [await zombie.append(b"old-%d" % i) for i in range(10)]
        assert acked == list(range(1, 11))

        owner = await keeper.open()
        assert [seq for seq, _ in await read_all(owner)] == acked

        results = await asyncio.wait_for(
            asyncio.gather(*(zombie.append(b"zombie-%d" % i) for i in range(20)), return_exceptions=True), 30)
        assert all(isinstance(r, LogFencedError) for r in results), results
        assert results[0].newer_epoch == owner.epoch
        with pytest.raises(LogFencedError):
            await zombie.append(b"late")

        assert await owner.append(b"new") == 11
        await owner.close()
        stored = await raw_messages(nats_cluster.urls, keeper.stream)
        assert_epochs_never_decrease(stored)
        assert not any(data.startswith(b"zombie") for _, _, data in stored)
        reader = await keeper.open()
        records = await read_all(reader)
        assert records == [(i, b"old-%d" % (i - 1)) for i in range(1, 11)] + [(11, b"new")]


async def test_zombie_writing_during_the_fence_loses_nothing_it_acked(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        zombie = await keeper.open()
        acked: dict[int, bytes] = {}
        failures: list[BaseException] = []

        async def writer(lane: int) -> None:
            for i in range(10_000):
                payload = b"lane%d-%d" % (lane, i)
                try:
                    acked[await zombie.append(payload)] = payload
                except LogClosedError as exc:
                    failures.append(exc)
                    return

        writers = [asyncio.create_task(writer(lane)) for lane in range(4)]
        while len(acked) < 200:
            await asyncio.sleep(0.01)
        owner = await keeper.open()
        opened_at_ack_count = len(acked)
        await asyncio.wait_for(asyncio.gather(*writers), 30)
        assert failures and all(isinstance(f, LogFencedError) for f in failures), failures

        recovered = dict(await read_all(owner))
        assert all(recovered.get(seq) == payload for seq, payload in acked.items()), "an acked record was lost"
        assert sorted(recovered) == list(range(1, len(recovered) + 1))
        assert len(acked) >= opened_at_ack_count
        # what the zombie had in flight at the fence either landed before the marker (recovered) or not at all
        assert len(recovered) - len(acked) <= zombie.max_in_flight
        assert await owner.append(b"after") == len(recovered) + 1
        assert_epochs_never_decrease(await raw_messages(nats_cluster.urls, keeper.stream))


async def test_an_owner_with_an_older_epoch_cannot_open_or_disturb_the_current_one(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        await keeper.open(epoch=1)
        current = await keeper.open(epoch=5)
        assert await current.append(b"a") == 1
        stale = keeper.new(epoch=3)
        with pytest.raises(LogFencedError) as refused:
            await stale.open()
        assert refused.value.newer_epoch == 5
        assert "epoch 5" in str(refused.value)
        with pytest.raises(LogClosedError):
            await stale.append(b"never")
        assert await current.append(b"b") == 2
        await current.close()
        reader = await keeper.open(epoch=6)
        assert await read_all(reader) == [(1, b"a"), (2, b"b")]


async def test_owner_that_lost_the_race_after_a_newer_marker_is_fenced(nats_cluster: NatsCluster) -> None:
    """The stream already captures the newer subject, and the newest message carries a newer epoch."""
    async with owners(nats_cluster.urls) as keeper:
        newest = await keeper.open(epoch=7)
        await newest.append(b"x")
        for stale_epoch in (6, 2):
            with pytest.raises(LogFencedError):
                await keeper.open(epoch=stale_epoch)
        assert await newest.append(b"y") == 2


async def test_fence_is_fast(nats_cluster: NatsCluster) -> None:
    async with owners(nats_cluster.urls) as keeper:
        first = await keeper.open()
        for i in range(100):
            await first.append(b"r%d" % i)
        loop = asyncio.get_running_loop()
        started = loop.time()
        second = await keeper.open()
        elapsed = loop.time() - started
        assert second.marker_sequence == 102
        assert elapsed < 2.0, f"opening (the fence) took {elapsed:.3f} s"
        with contextlib.suppress(LogClosedError):
            await first.append(b"zombie")
        assert first.failure is not None
