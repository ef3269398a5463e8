"""``anabranch bench append``: raw append throughput and ack latency of a segment store over TCP.

Starts a segment store in a child process (unless ``--segmentstore`` names one), creates a segment, and has each
writer (own TCP connection) send pre-framed AppendBlockEnd blocks of 500 events, Rust style, with a window of
blocks in flight (default: 2 MiB in flight, as the baseline has); then a paced run at 1000 single events/s
measures ack latency; then the disk's own limit (sequential writes, fsync every MiB, ~2 s). Prints ONE JSON
line. The client side speaks the wire protocol directly through the codec (no client library) so that it
measures the server, not the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress

from anabranch.protocol.codec import decode, encode, encode_append_block_end
from anabranch.protocol.commands import (
    AppendSetup,
    CreateSegment,
    DataAppended,
    GetStreamSegmentInfo,
    Hello,
    Reply,
    SegmentCreated,
    SetupAppend,
    StreamSegmentInfo,
    WireCommand,
)
from anabranch.protocol.framing import FrameDecoder
from anabranch.testing.processes import HOST, SegmentStoreProcess

MIB = 1024 * 1024
BLOCK_EVENTS = 500
EVENT_HEADER = 8
MAX_BLOCK_BYTES = 8 * MIB + EVENT_HEADER
"""A block holds at most 500 events and at most this many bytes, as the Rust client's blocks do."""
INFLIGHT_BYTES = 8 * 256 * 1024
"""Default bytes in flight per writer: the baseline's (``peer_pyappend.py``: 8 unacked blocks of 256 KiB). Acks
wait for an fsync of a few ms, so the window, not the server, bounds a run with fewer bytes in flight."""


class _BenchConnection(asyncio.Protocol):
    """A minimal wire client: replies by request id, DataAppended to a callback."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._frames = FrameDecoder()
        self._waiters: dict[int, asyncio.Future[Reply]] = {}
        self._hello: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.on_ack: Callable[[DataAppended], None] = lambda _: None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for type_code, payload in self._frames.feed(data):
            reply = decode(type_code, payload)
            if isinstance(reply, DataAppended):
                self.on_ack(reply)
            elif isinstance(reply, Hello):
                if not self._hello.done():
                    self._hello.set_result(reply)
            else:
                waiter = self._waiters.pop(int(getattr(reply, "request_id", -1)), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(reply)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"segment store closed the connection: {exc!r}")
        waiters: list[asyncio.Future[Any]] = [self._hello, *self._waiters.values()]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
        if not self.lost.done():
            self.lost.set_result(None)

    @classmethod
    async def open(cls, host: str, port: int) -> _BenchConnection:
        _, conn = await asyncio.get_running_loop().create_connection(cls, host, port)
        conn.send(Hello(17, 5))
        await asyncio.wait_for(conn._hello, 10)
        return conn

    def send(self, cmd: WireCommand) -> None:
        assert self.transport is not None
        self.transport.write(encode(cmd))

    async def request(self, cmd: WireCommand, request_id: int) -> Reply:
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = waiter
        self.send(cmd)
        return await asyncio.wait_for(waiter, 30)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _events_block(event_size: int, count: int) -> bytes:
    event = (0).to_bytes(4, "big") + event_size.to_bytes(4, "big") + os.urandom(event_size)
    return event * count


async def _setup_writer(host: str, port: int, segment: str, request_id: int) -> tuple[_BenchConnection, uuid.UUID]:
    conn = await _BenchConnection.open(host, port)
    writer_id = uuid.uuid4()
    reply = await conn.request(SetupAppend(request_id, writer_id, segment, ""), request_id)
    if not isinstance(reply, AppendSetup):
        raise click.ClickException(f"SetupAppend failed: {reply}")
    return conn, writer_id


async def _throughput_writer(
    host: str, port: int, segment: str, index: int, blocks: int, block: bytes, block_events: int, window: int,
    latencies: list[float], progress: Callable[[int], None],
) -> None:
    conn, writer_id = await _setup_writer(host, port, segment, 1000 + index)
    sent_at: dict[int, float] = {}
    acked = 0
    credit = asyncio.Semaphore(window)
    done = asyncio.get_running_loop().create_future()

    def on_ack(ack: DataAppended) -> None:
        nonlocal acked
        now = time.perf_counter()
        for number in [n for n in sent_at if n <= ack.event_number]:
            latencies.append(now - sent_at.pop(number))
            acked += 1
            credit.release()
            progress(block_events)
        if acked == blocks and not done.done():
            done.set_result(None)

    conn.on_ack = on_ack
    assert conn.transport is not None
    for number in range(1, blocks + 1):
        await credit.acquire()
        last_event = number * block_events
        sent_at[last_event] = time.perf_counter()
        conn.transport.writelines(
            encode_append_block_end(writer_id, len(block), (block,), len(block), block_events, last_event, number)
        )
    await asyncio.wait([done, conn.lost], return_when=asyncio.FIRST_COMPLETED, timeout=600)
    conn.close()
    if not done.done():
        raise click.ClickException(f"throughput run got {acked} of {blocks} acks before the connection ended")


async def _latency_run(host: str, port: int, segment: str, event_size: int, seconds: float) -> list[float]:
    conn, writer_id = await _setup_writer(host, port, segment, 99)
    event = _events_block(event_size, 1)
    sent_at: dict[int, float] = {}
    latencies: list[float] = []

    def on_ack(ack: DataAppended) -> None:
        now = time.perf_counter()
        for number in [n for n in sent_at if n <= ack.event_number]:
            latencies.append(now - sent_at.pop(number))

    conn.on_ack = on_ack
    assert conn.transport is not None
    count = int(seconds * 1000)
    start = time.perf_counter()
    for number in range(1, count + 1):
        delay = start + number / 1000 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at[number] = time.perf_counter()
        conn.transport.writelines(encode_append_block_end(writer_id, len(event), (event,), len(event), 1, number,
                                                          number))
    deadline = time.perf_counter() + 30
    while sent_at and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    conn.close()
    return latencies


def _disk_limit(directory: Path, seconds: float = 2.0) -> float:
    """MiB/s of sequential 1 MiB writes, each followed by fsync, for ``seconds``."""
    chunk = os.urandom(MIB)
    path = directory / f"bench-disk-{uuid.uuid4().hex}.tmp"
    written = 0
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while time.perf_counter() - start < seconds:
            os.write(fd, chunk)
            os.fsync(fd)
            written += 1
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return written / (time.perf_counter() - start)


def _peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _bench(host: str, port: int, event_size: int, events: int, writers: int, window: int | None,
                 latency_seconds: float, progress: Progress | None) -> dict[str, Any]:
    segment = f"bench/append-{uuid.uuid4().hex[:8]}/0.#epoch.0"
    admin = await _BenchConnection.open(host, port)
    reply = await admin.request(CreateSegment(1, segment), 1)
    if not isinstance(reply, SegmentCreated):
        raise click.ClickException(f"CreateSegment failed: {reply}")
    block_events = max(1, min(BLOCK_EVENTS, MAX_BLOCK_BYTES // (event_size + EVENT_HEADER)))
    block = _events_block(event_size, block_events)
    window = window or max(8, -(-INFLIGHT_BYTES // len(block)))
    blocks_per_writer = max(1, events // (block_events * writers))
    total_events = blocks_per_writer * block_events * writers
    task = progress.add_task("appending", total=total_events) if progress else None

    def advance(count: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task, count)

    # Latency first, on a quiet server: after the throughput run the storage writer is still moving its data to
    # LTS, and those large writes and fsyncs would be measured too.
    latency_segment = segment.replace("/0.#epoch.0", "/1.#epoch.0")
    await admin.request(CreateSegment(2, latency_segment), 2)
    ack_latencies = await _latency_run(host, port, latency_segment, event_size, latency_seconds)
    block_latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(
        _throughput_writer(
            host, port, segment, i, blocks_per_writer, block, block_events, window, block_latencies, advance
        )
        for i in range(writers)
    ))
    elapsed = time.perf_counter() - start
    info = await admin.request(GetStreamSegmentInfo(3, segment, ""), 3)
    expected_bytes = total_events * (event_size + EVENT_HEADER)
    if not isinstance(info, StreamSegmentInfo) or info.write_offset != expected_bytes:
        raise click.ClickException(f"segment holds {info} after the run, expected {expected_bytes} bytes")
    admin.close()
    return {
        "events_per_s": round(total_events / elapsed),
        "mb_per_s": round(total_events * (event_size + EVENT_HEADER) / elapsed / MIB, 2),
        "block_ack_p50_ms": round(statistics.median(block_latencies) * 1000, 3),
        "ack_p50_ms": round(_percentile(ack_latencies, 0.5) * 1000, 3),
        "ack_p99_ms": round(_percentile(ack_latencies, 0.99) * 1000, 3),
        "events": total_events,
        "event_size": event_size,
        "writers": writers,
        "window": window,
        "block_events": block_events,
    }


@click.command()
@click.option("--event-size", type=click.IntRange(1, 8 * MIB), default=100, show_default=True)
@click.option("--events", type=click.IntRange(1), default=2_000_000, show_default=True)
@click.option("--writers", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--window", type=click.IntRange(1, 1024), default=None,
              help="Append blocks in flight per writer (default: as many as make 2 MiB, the baseline's window).")
@click.option("--latency-seconds", type=click.FloatRange(0.1), default=2.0, show_default=True,
              help="Duration of the paced 1000 events/s latency run.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line (no progress bar).")
@click.option("--segmentstore", "endpoint", default=None, help="HOST:PORT of a running segment store.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory of the child segment store (default: a temporary directory).")
@click.option("--cache-size", "cache_size_mb", type=click.IntRange(1), default=256, show_default=True,
              help="Read-cache size (MiB) of the child segment store; its peak resident size is reported.")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a cProfile of the child segment store to this file.")
def bench_append(event_size: int, events: int, writers: int, window: int | None, latency_seconds: float, as_json: bool,
                 endpoint: str | None, data_dir: Path | None, cache_size_mb: int, profile_path: Path | None) -> None:
    """Append throughput and ack latency of a segment store (prints one JSON line)."""
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-") as tmp:
        directory = data_dir or Path(tmp) / "data"
        directory.mkdir(parents=True, exist_ok=True)
        server: SegmentStoreProcess | None = None
        if endpoint is None:
            if profile_path is not None:
                os.environ["ANABRANCH_PROFILE"] = str(profile_path.resolve())
            server = SegmentStoreProcess(directory, None, "--cache-size", str(cache_size_mb))
            server.start()
            host, port = HOST, server.segmentstore_port
        else:
            host, _, port_text = endpoint.rpartition(":")
            port = int(port_text)
        try:
            console = Console(stderr=True)
            progress = None if as_json else Progress(console=console, transient=True)
            if progress is not None:
                progress.start()
            try:
                figures = asyncio.run(
                    _bench(host, port, event_size, events, writers, window, latency_seconds, progress)
                )
            finally:
                if progress is not None:
                    progress.stop()
            if server is not None:
                figures["cache_size_mb"] = cache_size_mb
                figures["server_peak_rss_mb"] = _peak_rss_mb(server.pid)
        finally:
            if server is not None:
                server.stop()
        figures["disk_limit_mb_per_s"] = round(_disk_limit(directory), 1)
        click.echo(json.dumps(figures))
