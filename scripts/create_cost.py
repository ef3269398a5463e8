"""CPU per stream create, in process: the controller's create workflow called directly, without gRPC.

    python3 scripts/create_cost.py [--count 9000] [--concurrency 32] [--settle 4]

Starts an embedded ``Standalone`` on a temporary data directory, creates ``--count`` streams in one scope with
``--concurrency`` creates in flight (``Streams.create_stream``, the workflow behind ``createStream``), then waits
``--settle`` seconds for the background work the creates caused (the storage writer moving the new table segments to
LTS). Prints one JSON line: creates/s, and the process CPU per create during the creates and including the settle.
Process CPU is far steadier than throughput on a shared machine: compare two trees with ``PYTHONPATH``, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time

from anabranch.controller.records import StreamConfiguration
from anabranch.embedded import Standalone


async def measure(count: int, concurrency: int, settle: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="create-cost-") as data_dir:
        server = await Standalone(data_dir).start()
        try:
            controller = server.controller.controller
            assert controller is not None, "the embedded controller is running"
            streams = controller.streams
            await streams.create_scope("cost")
            names = iter(f"s-{i}" for i in range(count))

            async def worker() -> None:
                for name in names:
                    await streams.create_stream("cost", name, StreamConfiguration())

            started, cpu_started = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed, cpu_created = time.perf_counter() - started, time.process_time()
            await asyncio.sleep(settle)
            cpu_settled = time.process_time()
        finally:
            await server.stop()
    return {"creates": count, "concurrency": concurrency, "creates_per_s": round(count / elapsed, 1),
            "cpu_ms_per_create": round((cpu_created - cpu_started) / count * 1000, 3),
            "cpu_ms_per_create_with_flush": round((cpu_settled - cpu_started) / count * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=9000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--settle", type=float, default=4.0, help="Seconds of background work counted after.")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.count, args.concurrency, args.settle))))


if __name__ == "__main__":
    main()
