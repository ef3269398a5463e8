"""Auto-scale precision: the peak segment count a steady load drives a stream to, against the count it needs.

Runs the real segment-store statistics and controller planning on a manual, compressed clock
(``anabranch.segmentstore.stats.simulation``) for several loads, scale factors and writer backlogs, and prints
one row each (needed = ceil(rate / target); the target is peak <= 1.5 x needed) plus one JSON line:

    python3 scripts/autoscale_precision.py            # about 2 s
    python3 scripts/autoscale_precision.py --json     # only the JSON line
    python3 scripts/autoscale_precision.py --live     # also a real run: about 70 s

``--live`` also runs the real thing: ``anabranch standalone --autoscale-time-scale 60``, a stream with an
event-rate policy (target 20 events/s, scale factor 2) and one writer sending 200 events/s over 256 routing keys
for 60 s; it prints the segment count every 5 s and the peak against the 10 segments the load needs.

``first split`` and ``reached`` are seconds of the compressed clock (time scale 60: the 10-minute cool-down is
10 s) until the first split and until the stream first had the needed count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
from pathlib import Path

from anabranch.client import ClientConfig, StreamManager
from anabranch.client.config import ScalingPolicy, StreamConfiguration
from anabranch.segmentstore.stats.simulation import simulate
from anabranch.testing.processes import Standalone

SCENARIOS = [
    # rate (events/s), target per segment, scale factor, seconds of writer backlog after a scale
    (200, 20, 2, 0.0),
    (200, 20, 2, 1.0),
    (400, 20, 2, 1.0),
    (200, 20, 4, 1.0),
    (200, 20, 10, 1.0),
    (400, 20, 10, 1.0),
    (1000, 20, 10, 1.0),
]


async def _run(time_scale: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for rate, target, factor, backlog in SCENARIOS:
        run = await simulate(rate, target, scale_factor=factor, time_scale=time_scale, backlog_seconds=backlog)
        rows.append({"rate": rate, "target": target, "scale_factor": factor, "backlog_s": backlog,
                     "needed": run.needed, "peak": run.peak, "final": run.final,
                     "peak_over_needed": round(run.precision, 2), "first_split_s": run.first_split_s,
                     "reached_needed_s": run.reached_needed_s, "met": run.precision <= 1.5})
    return rows


async def _live(uri: str, rate: int, target: int, scale_factor: int, seconds: float) -> list[int]:
    """Write ``rate`` events/s for ``seconds``; the stream's segment count once a second."""
    counts: list[int] = []
    async with StreamManager(ClientConfig(uri)) as manager:
        await manager.create_scope("precision")
        policy = ScalingPolicy.by_event_rate(target, scale_factor, 1)
        await manager.create_stream("precision", "load", StreamConfiguration(scaling=policy))
        writer = manager.create_writer("precision", "load")
        sent = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            second_end = time.monotonic() + 1.0
            for step in range(20):
                for _ in range(rate // 20):
                    await writer.write_event(b"event %d" % sent, routing_key=f"key-{sent % 256}")
                    sent += 1
                await asyncio.sleep(max(0.0, second_end - 1.0 + (step + 1) / 20 - time.monotonic()))
            await writer.flush()
            counts.append(len(await manager.get_current_segments("precision", "load")))
            if len(counts) % 5 == 0:
                print(f"  {len(counts):>3} s: {counts[-1]} segments", flush=True)
        await writer.close()
    return counts


def live(time_scale: float, seconds: float) -> dict[str, object]:
    rate, target, factor = 200, 20, 2
    with tempfile.TemporaryDirectory(prefix="anabranch-precision-") as tmp:
        server = Standalone(Path(tmp) / "data", None, None, "--autoscale-time-scale", str(time_scale))
        server.start()
        try:
            counts = asyncio.run(_live(server.controller_uri, rate, target, factor, seconds))
        finally:
            server.stop()
    needed = math.ceil(rate / target)
    peak = max(counts)
    return {"rate": rate, "target": target, "scale_factor": factor, "time_scale": time_scale, "needed": needed,
            "peak": peak, "final": counts[-1], "peak_over_needed": round(peak / needed, 2),
            "reached_needed_s": next((i + 1 for i, c in enumerate(counts) if c >= needed), None),
            "met": peak <= 1.5 * needed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=60.0, help="clock compression (AutoScaleConfig)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--live", action="store_true", help="also run a real standalone under a real writer")
    parser.add_argument("--live-seconds", type=float, default=60.0)
    args = parser.parse_args()
    rows = asyncio.run(_run(args.time_scale))
    live_row = live(args.time_scale, args.live_seconds) if args.live else None
    if not args.json:
        print(f"{'rate':>6} {'target':>6} {'factor':>6} {'backlog':>7} {'needed':>6} {'peak':>5} {'final':>5} "
              f"{'peak/needed':>11} {'first split':>11} {'reached':>8}")
        for r in rows:
            reached = "never" if r["reached_needed_s"] is None else f"{r['reached_needed_s']:.1f}"
            first = "never" if r["first_split_s"] is None else f"{r['first_split_s']:.1f}"
            print(f"{r['rate']:>6} {r['target']:>6} {r['scale_factor']:>6} {r['backlog_s']:>7} {r['needed']:>6} "
                  f"{r['peak']:>5} {r['final']:>5} {r['peak_over_needed']:>11} {first:>11} {reached:>8}")
        if live_row is not None:
            print(f"live: needed {live_row['needed']}, peak {live_row['peak']}, final {live_row['final']}, "
                  f"reached the need after {live_row['reached_needed_s']} s")
    worst = max(float(str(r["peak_over_needed"])) for r in rows)
    print(json.dumps({"autoscale_precision": rows, "worst_peak_over_needed": worst, "live": live_row}))


if __name__ == "__main__":
    main()
