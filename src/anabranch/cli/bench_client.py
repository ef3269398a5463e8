"""``anabranch bench write`` / ``bench read``: throughput and latency of the Python client end to end.

Starts ``anabranch standalone`` as a child process unless ``--controller`` names a running one,
creates a scope and a stream (``--segments``), then:
- write: ``--writers`` EventStreamWriters write ``--events`` events of ``--event-size`` bytes with
  ``--routing-keys`` keys (round robin; 0 = no key) as fast as they can, flush, and the figures are
  taken; then a paced run (``--rate`` events/s for ``--latency-seconds``) measures the ack latency
  and the end-to-end latency (write → a tail reader on the segment sees it). ``--latency-mode closed`` (the
  default) keeps one event in flight, sending the next at its time or at the previous ack, whichever is later
  (the baseline's method); ``open`` sends on schedule whatever the acks, so a stall counts for every event
  queued behind it.
- read: the events are written first, then ``--writers`` readers of one reader group read them all.
Prints ONE JSON line (as ``bench append`` does). A progress bar on stderr follows the events written or read
when stderr is a terminal (not with ``--json``). Against a running server, everything the benchmark created
(streams, reader group, and the ``bench`` scope when it is left empty) is removed at the end.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import struct
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import click

from anabranch.cli.bench_append import MIB, _percentile
from anabranch.cli.bench_progress import BenchRun
from anabranch.client.config import ClientConfig, ScalingPolicy, StreamConfiguration
from anabranch.client.event_writer import EventStreamWriter
from anabranch.client.stream_manager import StreamManager
from anabranch.protocol import commands as wire
from anabranch.testing.processes import Standalone

_STAMP = struct.Struct(">q")


async def _setup(manager: StreamManager, segments: int, run: BenchRun) -> tuple[str, str]:
    scope, stream = "bench", f"client-{uuid.uuid4().hex[:8]}"
    await manager.create_scope(scope)
    await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(segments)))
    run.streams.append((scope, stream))
    return scope, stream


async def _write_all(manager: StreamManager, scope: str, stream: str, event_size: int, events: int, writers: int,
                     keys: int, run: BenchRun) -> tuple[int, float]:
    payload = os.urandom(event_size)
    key_names: list[str | None] = [f"key-{i}" for i in range(keys)] or [None]
    per_writer = max(1, events // writers)

    async def one(index: int) -> None:
        writer: EventStreamWriter[bytes] = manager.create_writer(scope, stream)
        write = writer.write_event
        # The keys round robin, as one precomputed pass of about 1,000 events (a whole number of rounds), so the
        # loop around write_event is as bare as the baseline's around its framing.
        count = len(key_names)
        one_pass = [key_names[(i + index) % count] for i in range(count * max(1, 1000 // count))]
        passes, rest = divmod(per_writer, len(one_pass))
        advance = run.advance
        for _ in range(passes):
            for key in one_pass:
                await write(payload, key)
            advance(len(one_pass))
        for key in one_pass[:rest]:
            await write(payload, key)
        await writer.flush()
        advance(rest)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(writers)))
    return per_writer * writers, time.perf_counter() - start


def _read_request(segment: str, offset: int, request_id: int) -> wire.ReadSegment:
    return wire.ReadSegment(segment, offset, 1 << 20, "", request_id)


def _record(into: list[float], sent: float, _future: object) -> None:
    into.append((time.perf_counter() - sent) * 1000)


async def _latency(manager: StreamManager, rate: int, seconds: float, event_size: int, closed_loop: bool,
                   run: BenchRun) -> dict[str, float | str]:
    scope, stream = await _setup(manager, 1, run)
    segment = f"{scope}/{stream}/0.#epoch.0"
    writer: EventStreamWriter[bytes] = manager.create_writer(scope, stream)
    total = max(1, int(rate * seconds))
    e2e: list[float] = []
    acks: list[float] = []
    padding = b"\0" * max(0, event_size - _STAMP.size)

    async def tail_reader() -> None:
        offset, buffer = 0, b""
        while len(e2e) < total:
            reply = await manager.router.request(segment, functools.partial(_read_request, segment, offset),
                                                 timeout=40)
            assert isinstance(reply, wire.SegmentRead), reply
            now = time.perf_counter_ns()
            buffer += reply.data
            offset += len(reply.data)
            while len(buffer) >= 8 + _STAMP.size:
                length = int.from_bytes(buffer[4:8], "big")
                if len(buffer) < 8 + length:
                    break
                e2e.append((now - _STAMP.unpack_from(buffer, 8)[0]) / 1e6)
                buffer = buffer[8 + length:]

    reader = asyncio.create_task(tail_reader())
    interval = 1.0 / rate
    start = time.perf_counter()
    pending: list[asyncio.Future[None]] = []
    for i in range(total):
        if closed_loop and pending:
            await pending[-1]  # one event in flight at a time, as the baseline measures
        target = start + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = time.perf_counter()
        ack = await writer.write_event(_STAMP.pack(time.perf_counter_ns()) + padding)
        ack.add_done_callback(functools.partial(_record, acks, sent))
        pending.append(ack)
    await asyncio.gather(*pending)
    await asyncio.wait_for(reader, 60)
    await writer.close()
    return {
        "ack_p50_ms": round(_percentile(acks, 0.5), 3),
        "ack_p99_ms": round(_percentile(acks, 0.99), 3),
        "e2e_p50_ms": round(_percentile(e2e, 0.5), 3),
        "e2e_p99_ms": round(_percentile(e2e, 0.99), 3),
        "latency_rate_events_per_s": rate,
        "latency_mode": "closed" if closed_loop else "open",
    }


async def _bench_write(uri: str, event_size: int, events: int, writers: int, keys: int, segments: int, rate: int,
                       latency_seconds: float, closed_loop: bool, run: BenchRun) -> dict[str, Any]:
    async with StreamManager(ClientConfig(uri)) as manager, run.cleanup(manager):
        scope, stream = await _setup(manager, segments, run)
        with run.progress("writing", events):
            written, elapsed = await _write_all(manager, scope, stream, event_size, events, writers, keys, run)
        figures: dict[str, Any] = {
            "events_per_s": round(written / elapsed),
            "mb_per_s": round(written * (event_size + 8) / elapsed / MIB, 2),
        }
        figures.update(await _latency(manager, rate, latency_seconds, event_size, closed_loop, run))
        figures.update({"events": written, "event_size": event_size, "writers": writers, "routing_keys": keys,
                        "segments": segments})
        return figures


async def _bench_read(uri: str, event_size: int, events: int, readers: int, keys: int,
                      segments: int, run: BenchRun) -> dict[str, Any]:
    from anabranch.client.reader_group import ReaderGroupConfig

    async with StreamManager(ClientConfig(uri)) as manager, run.cleanup(manager):
        scope, stream = await _setup(manager, segments, run)
        with run.progress("writing", events):
            written, _ = await _write_all(manager, scope, stream, event_size, events, 1, keys, run)
        group_name = f"g{uuid.uuid4().hex[:8]}"
        group = await manager.create_reader_group(scope, group_name, ReaderGroupConfig.for_streams(scope, stream))
        run.groups.append((scope, group_name))
        counts = [0] * readers
        done = asyncio.Event()

        async def one(index: int) -> None:
            reader = await group.create_reader(f"reader-{index}")
            try:
                while not done.is_set():
                    batch = await reader.read_events(max_events=1000, timeout=0.5)
                    if batch[0].event is not None:
                        counts[index] += len(batch)
                        run.advance(len(batch))
                        if sum(counts) >= written:
                            done.set()
            finally:
                await reader.close()

        with run.progress("reading", written):
            start = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(readers))), 600)
            elapsed = time.perf_counter() - start
        return {
            "events_per_s": round(written / elapsed),
            "mb_per_s": round(written * (event_size + 8) / elapsed / MIB, 2),
            "events": written, "event_size": event_size, "readers": readers, "routing_keys": keys,
            "segments": segments,
        }


def _with_server(controller: str | None, as_json: bool, run: Any) -> dict[str, Any]:
    """Run the benchmark against ``controller`` (cleaning up afterwards) or a fresh standalone it starts."""
    if controller is not None:
        return dict(asyncio.run(run(controller, BenchRun(show_progress=not as_json, clean_up=True))))
    with tempfile.TemporaryDirectory(prefix="anabranch-bench-") as tmp:
        server = Standalone(Path(tmp) / "data")
        server.start()
        try:
            return dict(asyncio.run(run(server.controller_uri, BenchRun(show_progress=not as_json, clean_up=False))))
        finally:
            server.stop()


def _common(function: Any) -> Any:
    options = [
        click.option("--event-size", type=click.IntRange(1, 8 * MIB), default=100, show_default=True),
        click.option("--events", type=click.IntRange(1), default=1_000_000, show_default=True),
        click.option("--writers", type=click.IntRange(1, 64), default=1, show_default=True,
                     help="Writers (bench write) or readers (bench read)."),
        click.option("--routing-keys", type=click.IntRange(0), default=100, show_default=True,
                     help="Distinct routing keys, used round robin (0 = events without a key)."),
        click.option("--segments", type=click.IntRange(1, 64), default=1, show_default=True),
        click.option("--json", "as_json", is_flag=True, help="Print only the JSON line."),
        click.option("--controller", default=None, help="URI of a running controller (default: start standalone)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command()
@_common
@click.option("--rate", type=click.IntRange(1), default=1000, show_default=True,
              help="Events/s of the paced latency run.")
@click.option("--latency-seconds", type=click.FloatRange(0.1), default=2.0, show_default=True)
@click.option("--latency-mode", type=click.Choice(["closed", "open"]), default="closed", show_default=True,
              help="closed: the paced run waits for each ack before the next event (one in flight, as the "
                   "baseline measures); open: events go out on schedule whatever the acks (queueing counts).")
def bench_write(event_size: int, events: int, writers: int, routing_keys: int, segments: int, as_json: bool,
                controller: str | None, rate: int, latency_seconds: float, latency_mode: str) -> None:
    """Event writer throughput, then ack and end-to-end latency at a fixed rate (one JSON line)."""
    figures = _with_server(controller, as_json, lambda uri, run: _bench_write(
        uri, event_size, events, writers, routing_keys, segments, rate, latency_seconds, latency_mode == "closed",
        run))
    click.echo(json.dumps(figures))


@click.command()
@_common
def bench_read(event_size: int, events: int, writers: int, routing_keys: int, segments: int, as_json: bool,
               controller: str | None) -> None:
    """Reader-group read throughput of events written just before (one JSON line)."""
    figures = _with_server(controller, as_json, lambda uri, run: _bench_read(
        uri, event_size, events, writers, routing_keys, segments, run))
    click.echo(json.dumps(figures))
