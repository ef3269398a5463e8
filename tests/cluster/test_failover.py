"""Failover of a real cluster under load (issue 9): 3 segment stores, 2 controllers, ZooKeeper and a 3-node NATS
JetStream Tier-1, all real processes started by ``LocalCluster`` (what ``anabranch cluster up`` runs).

Each test writes with our client while it kills something with SIGKILL, then reads the stream back from its head:
every acknowledged event must be read exactly once, in per-key order. Failover times (kill → first acknowledgement
of an event routed to a segment whose container was on the killed host) are printed for the closing note.
"""

from __future__ import annotations

import asyncio
import json
import sys
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
        load = LoadWriter(manager, scope, stream)
        load.start()
        await load.wait_acked(300, 60)
        victim = 0
        cluster.kill_tier1_node(victim)
        killed_at = time.monotonic()
        acked_before = len(load.acked)
        await load.wait_acked(acked_before + 600, 150)
        await load.stop()
        print(json.dumps({"failover": "nats-node", "acked": len(load.acked), "failed": len(load.failed),
                          "stall_s": round(max(0.0, (load.first_ack_after(killed_at) or killed_at) - killed_at), 2)}))
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


def wait_progress(progress: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        text = progress.read_text() if progress.exists() else ""
        if text.isdigit() and int(text) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the official client acknowledged {text or 0} of {count} events in {timeout} s")
        time.sleep(0.1)


async def test_official_client_survives_a_segment_store_and_a_controller(cluster: LocalCluster,
                                                                        tmp_path: Path) -> None:
    """Issue 9's done-criterion: a segment store and a controller die under load from the official client, and
    nothing acknowledged is lost or duplicated."""
    survivor, doomed = cluster.controllers
    async with StreamManager(survivor.uri) as manager:
        scope, stream = await new_stream(manager, segments=4)
        segments = [s.qualified_name for s in await manager.get_current_segments(scope, stream)]
        victim = owner_of_stream(cluster, segments)
        progress = tmp_path / "progress"
        script = Path(__file__).with_name("official_load.py")
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), survivor.uri, scope, stream, "3000", "150", str(progress),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            await asyncio.to_thread(wait_progress, progress, 400, 90)
            cluster.kill(victim)
            cluster.kill(doomed)
            out, err = await asyncio.wait_for(process.communicate(), 240)
        except BaseException:
            process.kill()
            raise
        assert process.returncode == 0, err.decode()[-2000:]
        result = json.loads(out.decode().strip().splitlines()[-1])
        acked = {a.encode() for a in result["acked"]}
        print(json.dumps({"failover": "official-client", "acked": len(acked), "errors": result["error_count"]}))
        assert result["error_count"] == 0, result["errors"]
        assert len(acked) == 3000
        got = await read_everything(manager, scope, stream, acked)
        check_exactly_once_in_key_order(got, acked)
    cluster.restart(victim)
    cluster.restart(doomed)
    cluster.wait_ready(120)
