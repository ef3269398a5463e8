"""Auto-scale precision: the peak segment count a steady load drives a stream to, against the count it needs.

Runs the real segment-store statistics and controller planning on a manual, compressed clock
(``anabranch.segmentstore.stats.simulation``) for several loads, scale factors and writer backlogs, and prints
one row each (needed = ceil(rate / target); the target is peak <= 1.5 x needed) plus one JSON line:

    python3 scripts/autoscale_precision.py            # about 10 s
    python3 scripts/autoscale_precision.py --json     # only the JSON line

``first split`` and ``reached`` are seconds of the compressed clock (time scale 60: the 10-minute cool-down is
10 s) until the first split and until the stream first had the needed count.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from anabranch.segmentstore.stats.simulation import simulate

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
    rows = []
    for rate, target, factor, backlog in SCENARIOS:
        run = await simulate(rate, target, scale_factor=factor, time_scale=time_scale, backlog_seconds=backlog)
        rows.append({"rate": rate, "target": target, "scale_factor": factor, "backlog_s": backlog,
                     "needed": run.needed, "peak": run.peak, "final": run.final,
                     "peak_over_needed": round(run.precision, 2), "first_split_s": run.first_split_s,
                     "reached_needed_s": run.reached_needed_s, "met": run.precision <= 1.5})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=60.0, help="clock compression (AutoScaleConfig)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    rows = asyncio.run(_run(args.time_scale))
    if not args.json:
        print(f"{'rate':>6} {'target':>6} {'factor':>6} {'backlog':>7} {'needed':>6} {'peak':>5} {'final':>5} "
              f"{'peak/needed':>11} {'first split':>11} {'reached':>8}")
        for r in rows:
            reached = "never" if r["reached_needed_s"] is None else f"{r['reached_needed_s']:.1f}"
            first = "never" if r["first_split_s"] is None else f"{r['first_split_s']:.1f}"
            print(f"{r['rate']:>6} {r['target']:>6} {r['scale_factor']:>6} {r['backlog_s']:>7} {r['needed']:>6} "
                  f"{r['peak']:>5} {r['final']:>5} {r['peak_over_needed']:>11} {first:>11} {reached:>8}")
    print(json.dumps({"autoscale_precision": rows, "worst_peak_over_needed": max(r["peak_over_needed"]
                                                                                 for r in rows)}))


if __name__ == "__main__":
    main()
