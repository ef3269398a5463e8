"""Watch a stream follow its load: a real-time auto-scaling demonstration against ``anabranch standalone``.

Starts ``anabranch standalone`` with compressed auto-scale timing (``--autoscale-time-scale``), creates a
stream with an event-rate scaling policy, and drives one writer through phases of low, high and no traffic,
printing once a second the target and actual write rates and the stream's segments. Under the high phase the
hot segment splits (more segments, keys spread); when traffic stops the cold successors merge back.

    python3 scripts/autoscale_demo.py                 # about five minutes
    python3 scripts/autoscale_demo.py --quick         # about two and a half minutes (time compressed further)

It prints the URL of the stream's live console page (open it in a browser to watch the segments split and
merge as they happen); ``--admin-port`` picks the port (default: a free one).

Bounded: every phase has a fixed length and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from anabranch.client import ClientConfig, StreamManager
from anabranch.client.config import ScalingPolicy, StreamConfiguration
from anabranch.testing.processes import HOST, Standalone, free_port, wait_for_port

SCOPE, STREAM = "demo", "elastic"
TARGET_EVENTS_PER_SECOND = 20


async def drive(uri: str, phases: list[tuple[str, int, float]], console: str) -> list[int]:
    """Run the phases (name, events/s, seconds); print a line a second; return the segment count per second."""
    counts: list[int] = []
    async with StreamManager(ClientConfig(uri)) as manager:
        await manager.create_scope(SCOPE)
        policy = ScalingPolicy.by_event_rate(TARGET_EVENTS_PER_SECOND, 2, 1)
        await manager.create_stream(SCOPE, STREAM, StreamConfiguration(scaling=policy))
        writer = manager.create_writer(SCOPE, STREAM)
        print(f"stream {SCOPE}/{STREAM}: scale by events, target {TARGET_EVENTS_PER_SECOND}/s per segment")
        print(f"console: {console}  (open it to watch the segments split and merge)", flush=True)
        print(f"{'time':>5}  {'phase':<6} {'rate/s':>6}  segments")
        start = time.monotonic()
        sent = 0
        for name, rate, seconds in phases:
            phase_end = time.monotonic() + seconds
            while time.monotonic() < phase_end:
                second_end = time.monotonic() + 1.0
                per_step = rate / 20
                due = 0.0
                while time.monotonic() < second_end:
                    due += per_step
                    for _ in range(int(due)):
                        await writer.write_event(f"event {sent}".encode(), routing_key=f"key-{sent % 256}")
                        sent += 1
                    due -= int(due)
                    await asyncio.sleep(max(0.0, min(0.05, second_end - time.monotonic())))
                await writer.flush()
                segments = await manager.get_current_segments(SCOPE, STREAM)
                counts.append(len(segments))
                ranges = " ".join(f"[{s.min_key:.2f},{s.max_key:.2f})" for s in segments) if len(segments) <= 8 else ""
                print(f"{time.monotonic() - start:5.0f}  {name:<6} {rate:>6}  {len(segments):>3}  {ranges}", flush=True)
        await writer.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="compress time further: about two and a half minutes")
    parser.add_argument("--admin-port", type=int, default=0, help="port of the admin endpoint and console (0: free)")
    args = parser.parse_args()
    time_scale = 60 if args.quick else 30
    unit = 0.5 if args.quick else 1.0
    phases = [("warm", 10, 30 * unit), ("busy", 200, 100 * unit), ("idle", 0, 150 * unit)]
    with tempfile.TemporaryDirectory(prefix="anabranch-demo-") as tmp:
        admin_port = args.admin_port or free_port()
        server = Standalone(Path(tmp) / "data", None, None, "--autoscale-time-scale", str(time_scale),
                            "--admin-port", str(admin_port))
        server.start()
        try:
            wait_for_port(HOST, admin_port, 30, server.process)
            console = f"http://{HOST}:{admin_port}/console/{SCOPE}/{STREAM}"
            counts = asyncio.run(drive(server.controller_uri, phases, console))
        finally:
            server.stop()
    print(f"segments: started with {counts[0]}, peaked at {max(counts)}, ended with {counts[-1]}")


if __name__ == "__main__":
    main()
