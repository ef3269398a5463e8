"""Cluster-mode figures: failover time distribution, append throughput and ack latency beside standalone.

    python3 scripts/cluster_figures.py [--kills 5] [--events 200000] [--json]

Starts a local cluster (3 segment stores, 2 controllers, ZooKeeper, 3-node NATS JetStream) with ``LocalCluster``,
then:
- failover: a writer sends about 200 events/s to a one-segment stream; the segment store owning that segment's
  container is killed with SIGKILL; the time from the kill to the first acknowledgement after it is one sample (the
  container moved to another host). The victim is restarted and the cluster rebalanced before the next kill.
- throughput: ``anabranch bench write`` (3 writers, 3 segments, 100-byte events) against the cluster, then against a
  second cluster with one segment store (same controllers, ZooKeeper and NATS shape), then against a fresh
  standalone, all in the same run (``--no-single`` skips the one-segment-store cluster).
Prints one JSON document (and a short table without ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from anabranch.client.stream_manager import StreamManager
from anabranch.cluster.local import LocalCluster, LocalClusterConfig
from anabranch.segmentstore.store import container_id_for
from anabranch.testing.load import LoadWriter, check_exactly_once_in_key_order, new_stream, read_everything

CONTAINERS = 6


async def one_failover(cluster: LocalCluster) -> dict[str, Any]:
    async with StreamManager(cluster.controller_uri) as manager:
        scope, stream = await new_stream(manager, segments=1)
        (segment,) = [s.qualified_name for s in await manager.get_current_segments(scope, stream)]
        container = container_id_for(segment, CONTAINERS)
        owner = next(s["id"] for s in cluster.status()["segmentstores"] if container in s["containers"])
        victim = next(node for node in cluster.segmentstores if node.host_id == owner)
        load = LoadWriter(manager, scope, stream, rate=200)
        load.start()
        await load.wait_acked(200, 60)
        killed_at = time.monotonic()
        cluster.kill(victim)
        before = len(load.acked)
        await load.wait_acked(before + 200, 120)
        await load.stop()
        resumed = load.first_ack_after(killed_at)
        got = await read_everything(manager, scope, stream, set(load.acked))
        check_exactly_once_in_key_order(got, set(load.acked))
    cluster.restart(victim)
    cluster.wait_ready(120)
    return {"container": container, "victim": owner, "seconds": round((resumed or killed_at) - killed_at, 2),
            "acked": len(load.acked), "failed": len(load.failed)}


def bench_write(controller: str | None, events: int) -> dict[str, Any]:
    args = [sys.executable, "-m", "anabranch", "bench", "write", "--json", "--events", str(events),
            "--writers", "3", "--segments", "3", "--event-size", "100"]
    if controller is not None:
        args += ["--controller", controller]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"bench write failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5, help="failover samples (0 skips the failover figure)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-single", dest="single", action="store_false",
                        help="skip the throughput figure of a cluster with one segment store")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(LocalClusterConfig(Path(tmp) / "cluster", containers=CONTAINERS))
        started = time.monotonic()
        cluster.start()
        cluster.wait_ready(120)
        report: dict[str, Any] = {"cluster_start_seconds": round(time.monotonic() - started, 1)}
        try:
            samples = [asyncio.run(one_failover(cluster)) for _ in range(options.kills)]
            seconds = sorted(s["seconds"] for s in samples)
            if seconds:
                report["failover"] = {"samples": samples, "p50": statistics.median(seconds), "max": seconds[-1],
                                      "min": seconds[0]}
            report["bench_write_cluster"] = bench_write(cluster.controller_uri, options.events)
        finally:
            cluster.stop()
        if options.single:
            single = LocalCluster(LocalClusterConfig(Path(tmp) / "single", segmentstores=1, containers=CONTAINERS))
            single.start()
            try:
                single.wait_ready(120)
                report["bench_write_cluster_1_segmentstore"] = bench_write(single.controller_uri, options.events)
            finally:
                single.stop()
    report["bench_write_standalone"] = bench_write(None, options.events)
    if options.json:
        print(json.dumps(report))
        return
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
