"""Measure the JetStream Tier-1 log: ack latency, throughput, recovery read rate, fence and truncation time.

Starts its own 3-node NATS cluster (``sync_interval: always``) in a temporary directory unless ``--servers`` names
one, and prints one JSON object. Every replica shares this machine's disk and cores with the client, so the figures
are a floor for a real deployment and vary from run to run.

    python3 scripts/bench_tier1.py [--seconds 5] [--mib 256] [--servers nats://h:p,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats

from anabranch.cluster.nats_server import NatsCluster
from anabranch.storage.jetstream_log import JetStreamDurableDataLog
from anabranch.storage.jetstream_log_format import MAX_MESSAGE_DATA

CASES = [(1024, 64), (256 * 1024, 16), (MAX_MESSAGE_DATA, 8), (8 * 1024 * 1024, 2)]
"""(record size, concurrent appends): small records, medium, the largest single message, a container-sized record
split over 9 messages."""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Bench:
    def __init__(self, servers: list[str], seconds: float, mib: int) -> None:
        self.servers = servers
        self.seconds = seconds
        self.max_bytes = mib * 1024 * 1024
        self.prefix = f"bench{uuid.uuid4().hex[:8]}"
        self.epoch = 0

    async def owner(self) -> JetStreamDurableDataLog:
        self.epoch += 1
        log = JetStreamDurableDataLog(0, self.servers, self.epoch, stream_prefix=self.prefix)
        await log.open()
        return log

    async def latency(self, log: JetStreamDurableDataLog, size: int = 1024, warmup: int = 20,
                      count: int = 300) -> dict[str, Any]:
        payload = b"l" * size
        for _ in range(warmup):
            await log.append(payload)
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await log.append(payload)
            samples.append((time.perf_counter() - started) * 1000)
        return {"record_bytes": size, "appends": count, "p50_ms": round(statistics.median(samples), 2),
                "p99_ms": round(percentile(samples, 0.99), 2), "max_ms": round(max(samples), 2)}

    async def throughput(self, log: JetStreamDurableDataLog, size: int, concurrency: int) -> dict[str, Any]:
        payload = b"t" * size
        deadline = time.perf_counter() + self.seconds
        written = 0
        records = 0

        async def lane() -> None:
            nonlocal written, records
            while time.perf_counter() < deadline and written < self.max_bytes:
                written += size
                await log.append(payload)
                records += 1

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        return {"record_bytes": size, "concurrent_appends": concurrency, "records": records,
                "records_per_s": round(records / elapsed), "MB_per_s": round(records * size / elapsed / 1e6, 1)}

    async def run(self) -> dict[str, Any]:
        results: dict[str, Any] = {"servers": len(self.servers)}
        log = await self.owner()
        results["append_latency_1k"] = await self.latency(log)
        results["throughput"] = [await self.throughput(log, size, concurrency) for size, concurrency in CASES]
        await log.close()

        started = time.perf_counter()
        reader = await self.owner()
        fence_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        count = size = 0
        last = 0
        async for sequence, payload in reader.iter_records():
            count += 1
            size += len(payload)
            last = sequence
        elapsed = time.perf_counter() - started
        results["fence_ms"] = round(fence_ms, 1)
        results["recovery_read"] = {"records": count, "MB": round(size / 1e6, 1), "seconds": round(elapsed, 2),
                                    "MB_per_s": round(size / elapsed / 1e6, 1),
                                    "records_per_s": round(count / elapsed)}
        started = time.perf_counter()
        await reader.truncate(last)
        results["truncate_all_ms"] = round((time.perf_counter() - started) * 1000, 1)
        await reader.close()
        await self.delete_stream()
        return results

    async def delete_stream(self) -> None:
        client = await nats.connect(servers=self.servers)
        try:
            await client.jetstream(timeout=30).delete_stream(f"{self.prefix}-c0")
        finally:
            await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput case")
    parser.add_argument("--mib", type=int, default=256, help="at most this many MiB per throughput case")
    parser.add_argument("--servers", help="comma-separated nats:// URLs of a running JetStream cluster")
    args = parser.parse_args()
    if args.servers:
        results = asyncio.run(Bench(args.servers.split(","), args.seconds, args.mib).run())
    else:
        with tempfile.TemporaryDirectory(prefix="bench-tier1-") as base, NatsCluster(Path(base), nodes=3) as cluster:
            results = asyncio.run(Bench(cluster.urls, args.seconds, args.mib).run())
    json.dump(results, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
