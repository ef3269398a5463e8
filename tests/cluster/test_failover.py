"""Failover of a real cluster under load (issue 9): 3 segment stores, 2 controllers, ZooKeeper and a 3-node NATS
JetStream Tier-1, all real processes started by ``LocalCluster`` (what ``anabranch cluster up`` runs).

Each test writes with our client while it kills something with SIGKILL (a segment store; the NATS node leading the
Tier-1 stream of the stream's container), then checks that every acknowledged event is read exactly once, in
per-key order, by a reader group reading through the failure and by a new one reading from the head. The same with
the official client, through the real ``anabranch cluster up`` command, is in ``test_cluster_command.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anabranch.client.stream_manager import StreamManager
from anabranch.cluster.local import LocalCluster, LocalClusterConfig, SegmentStoreNode
from anabranch.segmentstore.store import container_id_for
from anabranch.testing.load import (
    LoadReader,
    LoadWriter,
    check_exactly_once_in_key_order,
    new_stream,
    read_everything,
)

pytestmark = [pytest.mark.process, pytest.mark.cluster, pytest.mark.timeout(300)]

CONTAINERS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(LocalClusterConfig(tmp_path_factory.mktemp("cluster"), segmentstores=3, controllers=2,
                                            containers=CONTAINERS))
    local.start()
    try:
        local.wait_ready(120)
        yield local
    finally:
        local.stop()


def owner_of_stream(cluster: LocalCluster, segment_names: list[str]) -> SegmentStoreNode:
    """The segment store that owns the container of the first of ``segment_names``."""
    status = cluster.status()
    container = container_id_for(segment_names[0], CONTAINERS)
    owner_id = next(s["id"] for s in status["segmentstores"] if container in s["containers"])
    return next(node for node in cluster.segmentstores if node.host_id == owner_id)


async def test_segment_store_killed_under_load(cluster: LocalCluster) -> None:
    async with StreamManager(cluster.controller_uri) as manager:
        scope, stream = await new_stream(manager, segments=4)
        segments = [s.qualified_name for s in await manager.get_current_segments(scope, stream)]
        victim = owner_of_stream(cluster, segments)
        live_reader = LoadReader(manager, scope, stream)
        await live_reader.start()
        load = LoadWriter(manager, scope, stream)
        load.start()
        await load.wait_acked(300, 60)
        killed_at = time.monotonic()
        acked_before = len(load.acked)
        cluster.kill(victim)
        await load.wait_acked(acked_before + 600, 120)
        await load.stop()
        resumed = load.first_ack_after(killed_at)
        report = {"failover": "segmentstore", "killed": victim.host_id, "acked": len(load.acked),
                  "failed": len(load.failed), "writes_resumed_after_s": None if resumed is None else
                  round(resumed - killed_at, 2)}
        print(json.dumps(report))
        assert not load.failed, load.failed[:3]
        check_exactly_once_in_key_order(await live_reader.wait_for(set(load.acked)), set(load.acked))
        got = await read_everything(manager, scope, stream, set(load.acked))
        check_exactly_once_in_key_order(got, set(load.acked))
    cluster.restart(victim)
    cluster.wait_ready(120)


async def test_tier1_node_killed_under_load(cluster: LocalCluster) -> None:
    async with StreamManager(cluster.controller_uri) as manager:
        scope, stream = await new_stream(manager, segments=4)
        segments = [s.qualified_name for s in await manager.get_current_segments(scope, stream)]
        tier1_stream = f"anabranch-{cluster.config.name}-c{container_id_for(segments[0], CONTAINERS)}"
        load = LoadWriter(manager, scope, stream)
        load.start()
        await load.wait_acked(300, 60)
        victim = await asyncio.to_thread(cluster.nats.leader_of, tier1_stream)
        cluster.kill_tier1_node(victim)
        killed_at = time.monotonic()
        acked_before = len(load.acked)
        await load.wait_acked(acked_before + 600, 150)
        await load.stop()
        stall = max(0.0, (load.first_ack_after(killed_at) or killed_at) - killed_at)
        print(json.dumps({"failover": "nats-stream-leader", "stream": tier1_stream, "acked": len(load.acked),
                          "failed": len(load.failed), "stall_s": round(stall, 2)}))
        assert not load.failed, load.failed[:3]
        got = await read_everything(manager, scope, stream, set(load.acked))
        check_exactly_once_in_key_order(got, set(load.acked))
    await asyncio.to_thread(cluster.restart_tier1_node, victim)
    cluster.wait_ready(120)


def test_cluster_state_file_describes_every_process(cluster: LocalCluster) -> None:
    status = cluster.status()
    assert status["ready"]
    assert len(status["segmentstores"]) == 3 and len(status["controllers"]) == 2
    assigned = sorted(c for s in status["segmentstores"] for c in s["containers"])
    assert assigned == list(range(CONTAINERS))
    counts = sorted(len(s["containers"]) for s in status["segmentstores"])
    assert counts[-1] - counts[0] <= 1
    assert Path(cluster.data_dir / "cluster.json").exists()

