"""Start-up time and memory of the embedded standalone (``anabranch.embedded.Standalone``), in memory.

Prints, for this interpreter: how long ``import anabranch.embedded`` took (a cold import: the servers and the client),
how long the first ``start()`` took (until the controller serves and ``server.manager`` exists; both also as CPU
time, which a loaded machine distorts less), the median of the next ``--starts`` starts and stops, the time to the
first acknowledged event of a new stream, and the resident memory (VmRSS) before the import, after it, and with one
server running. Run: ``python3 scripts/embedded_figures.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(starts: int) -> dict[str, float]:
    from anabranch.embedded import Standalone

    figures: dict[str, float] = {}
    began, cpu = time.perf_counter(), time.process_time()
    server = await Standalone().start()
    figures["first start (s)"] = time.perf_counter() - began
    figures["first start: CPU time of this process (s)"] = time.process_time() - cpu
    figures["RSS with one server running (MiB)"] = rss_mib()
    began = time.perf_counter()
    await server.create_stream("figures", "s")
    writer = server.manager.create_writer("figures", "s")
    await (await writer.write_event(b"hello"))
    figures["create stream + first acked event (s)"] = time.perf_counter() - began
    await writer.close()
    began = time.perf_counter()
    await server.stop()
    figures["first stop (s)"] = time.perf_counter() - began
    start_times, stop_times = [], []
    for _ in range(starts):
        began = time.perf_counter()
        server = await Standalone().start()
        start_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        await server.stop()
        stop_times.append(time.perf_counter() - began)
    if starts:
        figures[f"median start of the next {starts} (s)"] = statistics.median(start_times)
        figures[f"median stop of the next {starts} (s)"] = statistics.median(stop_times)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10, help="further starts and stops to time")
    args = parser.parse_args()
    figures = {"RSS before import (MiB)": rss_mib()}
    began, cpu = time.perf_counter(), time.process_time()
    import anabranch.embedded  # noqa: F401 - the import is what is measured

    figures["import anabranch.embedded (s)"] = time.perf_counter() - began
    figures["import: CPU time of this process (s)"] = time.process_time() - cpu
    figures["RSS after import (MiB)"] = rss_mib()
    figures.update(asyncio.run(measure(args.starts)))
    for name, value in figures.items():
        print(f"{name:45} {value:8.3f}")


if __name__ == "__main__":
    main()
