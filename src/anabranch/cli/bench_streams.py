"""``anabranch bench streams``: how cheap a stream is — create rate, resident memory per idle stream, restart time.

Starts a fresh standalone in a child process (so its resident size is its own), creates ``--count`` streams in one
scope (first ``--sequential`` of them one after another, the rest with ``--concurrency`` creates in flight), and
reports the create rates with p50/p99 latency, the server's resident-size growth per stream, and the restart time:
stop (SIGTERM; killed after ``--restart-timeout``, then ``stop_s`` is null and the restart recovers from a crash),
start on the same data directory, time until every stream is listed and an event written to a
random stream is acknowledged. The resident size is read again 1 s after the restart (``rss_after_restart_mb``:
the startup sweep has just read every stream) and once the streams are idle again (``--idle-settle`` later,
``rss_per_stream_after_restart_bytes``: the figure to compare with ``rss_per_stream_bytes``). Prints ONE JSON line
with ``--json`` (a progress bar on stderr otherwise).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from anabranch.client.stream_manager import StreamManager
from anabranch.segmentstore.storage_writer import StorageWriterConfig
from anabranch.testing.processes import Standalone

SCOPE = "benchstreams"
SETTLE_SECONDS = 1.0
"""Time given to the server to finish background work (storage writer, compaction) before reading its RSS."""
IDLE_SETTLE_SECONDS = StorageWriterConfig().release_idle_after + 2.0
"""Wait after the creates before reading the RSS per idle stream: by then every stream is idle, so the segment store
has released the in-memory bytes of its segments (they are in LTS)."""


def _rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return -1


def _percentile_ms(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3)


def stream_name(i: int) -> str:
    return f"s{i:07d}"


async def _create(manager: StreamManager, names: list[str], concurrency: int, progress: Progress | None,
                  task: Any) -> tuple[float, list[float]]:
    """Create ``names`` with ``concurrency`` creates in flight; returns (elapsed seconds, latencies)."""
    latencies: list[float] = []
    queue = iter(names)

    async def worker() -> None:
        for name in queue:
            started = time.perf_counter()
            if not await manager.create_stream(SCOPE, name):
                raise click.ClickException(f"stream {SCOPE}/{name} already existed on a fresh server")
            latencies.append(time.perf_counter() - started)
            if progress is not None:
                progress.advance(task)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


def _rate_figures(prefix: str, count: int, elapsed: float, latencies: list[float]) -> dict[str, Any]:
    if not count:
        return {}
    return {
        f"{prefix}_creates_per_s": round(count / elapsed, 1),
        f"{prefix}_create_p50_ms": _percentile_ms(latencies, 0.5),
        f"{prefix}_create_p99_ms": _percentile_ms(latencies, 0.99),
    }


async def _create_all(uri: str, count: int, sequential: int, concurrency: int,
                      progress: Progress | None) -> dict[str, Any]:
    names = [stream_name(i) for i in range(count)]
    task = progress.add_task("creating streams", total=count) if progress is not None else None
    async with StreamManager(uri) as manager:
        seq_elapsed, seq_lat = await _create(manager, names[:sequential], 1, progress, task)
        conc_elapsed, conc_lat = await _create(manager, names[sequential:], concurrency, progress, task)
    return {**_rate_figures("sequential", sequential, seq_elapsed, seq_lat),
            **_rate_figures("concurrent", count - sequential, conc_elapsed, conc_lat)}


async def _prepare(uri: str) -> None:
    async with StreamManager(uri) as manager:
        await manager.create_scope(SCOPE)


async def _check_after_restart(uri: str, count: int, deadline: float) -> tuple[float, float]:
    """Seconds until every stream is listed, and until a write to a random stream is acknowledged."""
    start = time.perf_counter()
    async with StreamManager(uri) as manager:
        while True:
            listed = 0
            try:
                listed = sum([1 async for _ in manager.list_streams(SCOPE)])
            except Exception as exc:  # the controller may still be recovering: retried until the deadline
                if time.perf_counter() > deadline:
                    raise click.ClickException(f"streams not listable after restart: {exc}") from exc
            if listed == count:
                break
            if time.perf_counter() > deadline:
                raise click.ClickException(f"only {listed} of {count} streams listed after restart")
            await asyncio.sleep(0.1)
        listed_s = time.perf_counter() - start
        writer = manager.create_writer(SCOPE, stream_name(random.randrange(count)))
        ack = await writer.write_event(b"hello after restart")
        await asyncio.wait_for(ack, max(deadline - time.perf_counter(), 1.0))
        await writer.close()
    return listed_s, time.perf_counter() - start


def run_bench(count: int, sequential: int, concurrency: int, data_dir: Path, show_progress: bool,
              restart_timeout: float, idle_settle: float = IDLE_SETTLE_SECONDS) -> dict[str, Any]:
    server = Standalone(data_dir / "data")
    server.start()
    try:
        asyncio.run(_prepare(server.controller_uri))
        time.sleep(SETTLE_SECONDS)
        rss_before = _rss_bytes(server.pid)
        progress = None
        if show_progress:
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            progress.start()
        try:
            figures = asyncio.run(_create_all(server.controller_uri, count, min(sequential, count), concurrency,
                                              progress))
        finally:
            if progress is not None:
                progress.stop()
        time.sleep(idle_settle)
        rss_after = _rss_bytes(server.pid)
        stop_start = time.perf_counter()
        stop_s: float | None
        try:
            server.stop(timeout=restart_timeout)
            stop_s = round(time.perf_counter() - stop_start, 3)
        except subprocess.TimeoutExpired:  # killed after the timeout: the restart then recovers from a crash
            stop_s = None
        start = time.perf_counter()
        server.start(timeout=restart_timeout)
        ports_s = time.perf_counter() - start
        listed_s, written_s = asyncio.run(_check_after_restart(server.controller_uri, count,
                                                               start + restart_timeout))
        time.sleep(SETTLE_SECONDS)
        rss_restarted = _rss_bytes(server.pid)
        time.sleep(max(0.0, idle_settle - SETTLE_SECONDS))
        rss_restarted_idle = _rss_bytes(server.pid)
    finally:
        server.kill()
    return {
        "streams": count,
        **figures,
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_per_stream_bytes": round((rss_after - rss_before) / count),
        "stop_s": stop_s,
        "restart_listening_s": round(ports_s, 3),
        "restart_listed_s": round(ports_s + listed_s, 3),
        "restart_s": round(ports_s + written_s, 3),
        "rss_after_restart_mb": round(rss_restarted / 2**20, 1),
        "rss_after_restart_idle_mb": round(rss_restarted_idle / 2**20, 1),
        "rss_per_stream_after_restart_bytes": round((rss_restarted_idle - rss_before) / count),
        "concurrency": concurrency,
    }


@click.command()
@click.option("--count", type=click.IntRange(1), default=10_000, show_default=True, help="Streams to create.")
@click.option("--sequential", type=click.IntRange(0), default=1000, show_default=True,
              help="How many of them are created one after another (the rest concurrently).")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="Creates in flight in the concurrent phase.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the child standalone keeps its data (default: a temporary directory).")
@click.option("--restart-timeout", type=click.FloatRange(1), default=600.0, show_default=True,
              help="Seconds allowed for the stop and for the restart.")
@click.option("--idle-settle", type=click.FloatRange(0), default=IDLE_SETTLE_SECONDS, show_default=True,
              help="Seconds to wait after the creates before reading the resident size (streams become idle).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line (no progress bar).")
def bench_streams(count: int, sequential: int, concurrency: int, data_dir: Path | None, restart_timeout: float,
                  idle_settle: float, as_json: bool) -> None:
    """Stream create rate, resident memory per idle stream and restart time of a fresh standalone."""
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-streams-") as tmp:
        directory = data_dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        figures = run_bench(count, sequential, concurrency, directory, not as_json, restart_timeout, idle_settle)
    if as_json:
        click.echo(json.dumps(figures))
        return
    for key, value in figures.items():
        click.echo(f"{key:>28}: {value}")
