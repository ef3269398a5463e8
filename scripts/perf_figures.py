"""Issue 15's figures in one run: the pure-Python baseline and ours, back to back, as ratios against targets.

    python3 scripts/perf_figures.py [--quick] [--reps N] [--only FIGURE,...] [--no-baseline] [--json]

Runs, one after another on this machine (each benchmark starts its own server and stops it):
- the baseline: ``peer_pyappend.py --reps 1 --n N --n1k N1K --sync group`` (a minimal asyncio append server with
  group commit and a client that frames each event in Python): writer 100 B and 1 KiB, reader, ack latency;
- ``anabranch bench write`` (100 B events, 100 routing keys), ``bench write --event-size 1024``, ``bench read``,
  the ack latency at 1,000 ev/s (``bench write --events 1000``: its paced run on a fresh server, not right after
  a flood), ``bench append`` (server side, raw append blocks), ``bench streams --count 100000`` (create rate
  and resident bytes per idle stream), ``autoscale_precision.py`` (worst peak / needed segments) and
  ``cluster_figures.py --kills 0`` (write throughput of a local cluster with 3 and with 1 segment store, and of a
  standalone, 3 writers each).
Prints a table (ours, baseline, ratio, target, met?) on stderr and ONE JSON line on stdout: ``figures`` (each with
``ours``, ``baseline``, ``ratio``, ``target``, ``met``), ``all_met``, the machine load before and after, and the
raw JSON of every benchmark. Throughput ratios compare events per second (equal event sizes on both sides).
The machine is shared and absolute numbers swing (the baseline's 100 B writer ran anywhere from 4.7 M to 7.6 M ev/s
in four back-to-back runs on a quiet machine): ``--reps N`` (default 3) runs the baseline and our throughput figures
(writers, reader, append) N times, alternating, and compares the median of each side; every repetition's figures
and ratios are in the JSON. Latency, streams, auto-scale and cluster figures run once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BASELINE = Path(os.environ.get("ANABRANCH_PERF_BASELINE", "/work/shared/bench/peers/peer_pyappend.py"))
FIGURES = ("write", "write_1k", "read", "latency", "append", "streams", "autoscale", "cluster")
THROUGHPUT = ("write", "write_1k", "read", "append")
TIMEOUT = 900.0


@dataclass(frozen=True)
class Sizes:
    events: int
    events_1k: int
    append_events: int
    streams: int
    latency_seconds: float


FULL = Sizes(events=1_000_000, events_1k=300_000, append_events=2_000_000, streams=100_000, latency_seconds=3.0)
QUICK = Sizes(events=200_000, events_1k=60_000, append_events=400_000, streams=1_000, latency_seconds=1.0)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _run(command: list[str], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return _json_lines(done.stdout)


def _bench(*args: str) -> dict[str, Any]:
    lines = _run([sys.executable, "-m", "anabranch", "bench", *args, "--json"])
    if not lines:
        raise RuntimeError(f"anabranch bench {' '.join(args)} printed no JSON")
    return lines[-1]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def median_baseline(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each baseline figure over its repetitions, with every repetition's raw lines."""
    out: dict[str, Any] = {"raw": [line for rep in reps for line in rep["raw"]]}
    for key in ("write", "write_1k", "read", "ack_p50_ms", "ack_p99_ms"):
        values = [rep[key] for rep in reps if key in rep]
        if values:
            out[key] = _median(values)
    return out


def median_ours(reps: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per throughput figure, the repetition with the median events/s (all of them kept under ``reps``)."""
    out: dict[str, dict[str, Any]] = {}
    for name in THROUGHPUT:
        runs = [rep[name] for rep in reps if name in rep]
        if runs:
            ordered = sorted(runs, key=lambda run: run["events_per_s"])
            out[name] = {**ordered[(len(ordered) - 1) // 2],
                         "events_per_s": _median([run["events_per_s"] for run in runs]),
                         "reps_events_per_s": [run["events_per_s"] for run in runs]}
    return out


def baseline(sizes: Sizes) -> dict[str, Any]:
    """The baseline's figures: events/s of the writer (100 B, 1 KiB) and reader (100 B), ack latency in ms."""
    with tempfile.TemporaryDirectory(prefix="perf-baseline-") as tmp:
        env = {**os.environ, "PERF_DIR": tmp}
        lines = _run([sys.executable, str(BASELINE), "--reps", "1", "--n", str(sizes.events),
                      "--n1k", str(sizes.events_1k), "--sync", "group"], env=env)
    out: dict[str, Any] = {"raw": lines}
    for line in lines:
        op, size = line.get("op"), line.get("size")
        if op == "write":
            out["write" if size == 100 else "write_1k"] = line["ev_s"]
        elif op == "read" and size == 100:
            out["read"] = line["ev_s"]
        elif op == "ack_latency":
            out["ack_p50_ms"] = line["lat_p50_us"] / 1000
            out["ack_p99_ms"] = line["lat_p99_us"] / 1000
    return out


def ours_throughput(sizes: Sizes, only: set[str]) -> dict[str, dict[str, Any]]:
    """One repetition of our throughput figures: writers (100 B, 1 KiB), reader, server-side append."""
    results: dict[str, dict[str, Any]] = {}
    if "write" in only:
        results["write"] = _bench("write", "--events", str(sizes.events), "--latency-seconds", "0.2")
    if "write_1k" in only:
        results["write_1k"] = _bench("write", "--event-size", "1024", "--events", str(sizes.events_1k),
                                     "--latency-seconds", "0.2")
    if "read" in only:
        results["read"] = _bench("read", "--events", str(sizes.events))
    if "append" in only:
        results["append"] = _bench("append", "--events", str(sizes.append_events), "--latency-seconds", "0.5")
    return results


def ours_once(sizes: Sizes, only: set[str]) -> dict[str, dict[str, Any]]:
    """Our figures that run once: ack latency, auto-scale precision, cluster throughput, stream creates/memory."""
    results: dict[str, dict[str, Any]] = {}
    if "latency" in only:  # on a server that has not just taken a flood (whose tiering to LTS still runs)
        results["latency"] = _bench("write", "--events", "1000", "--rate", "1000", "--latency-seconds",
                                    str(sizes.latency_seconds))
    if "autoscale" in only:
        lines = _run([sys.executable, str(Path(__file__).with_name("autoscale_precision.py")), "--json"])
        results["autoscale"] = lines[-1]
    if "cluster" in only:
        lines = _run([sys.executable, str(Path(__file__).with_name("cluster_figures.py")), "--kills", "0",
                      "--events", str(sizes.events // 5), "--json"])
        results["cluster"] = lines[-1]
    if "streams" in only:
        results["streams"] = _bench("streams", "--count", str(sizes.streams), "--sequential",
                                    str(min(1000, sizes.streams)))
    return results


def _ratio(figure: str, what: str, mine: float, base: float | None, target: float) -> dict[str, Any]:
    ratio = round(mine / base, 3) if base else None
    return {"figure": figure, "what": what, "ours": mine, "baseline": base, "ratio": ratio,
            "target": f"ratio >= {target}", "met": ratio is not None and ratio >= target}


def _bound(figure: str, what: str, mine: float, base: float | None, bound: float, *, at_most: bool) -> dict[str, Any]:
    met = mine <= bound if at_most else mine >= bound
    return {"figure": figure, "what": what, "ours": mine, "baseline": base, "ratio": None,
            "target": f"{'<=' if at_most else '>='} {bound}", "met": met}


def figures(base: dict[str, Any], mine: dict[str, dict[str, Any]], only: set[str]) -> list[dict[str, Any]]:
    rows = []
    if "write" in mine:
        rows.append(_ratio("write_100B", "one writer, 100 B events, 100 keys (ev/s)",
                           mine["write"]["events_per_s"], base.get("write"), 0.3))
    if "write_1k" in mine:
        rows.append(_ratio("write_1KiB", "one writer, 1 KiB events (ev/s)", mine["write_1k"]["events_per_s"],
                           base.get("write_1k"), 0.5))
    if "read" in mine:
        rows.append(_ratio("read_100B", "one reader, 100 B events (ev/s)", mine["read"]["events_per_s"],
                           base.get("read"), 0.5))
    if "append" in mine:
        rows.append(_ratio("append_100B", "raw append blocks, server side (ev/s)", mine["append"]["events_per_s"],
                           base.get("write"), 0.5))
    if "latency" in mine:
        rows.append(_bound("ack_p50_ms", "ack latency at 1,000 ev/s, p50 (ms)", mine["latency"]["ack_p50_ms"],
                           base.get("ack_p50_ms"), 1.0, at_most=True))
        rows.append(_bound("ack_p99_ms", "ack latency at 1,000 ev/s, p99 (ms)", mine["latency"]["ack_p99_ms"],
                           base.get("ack_p99_ms"), 4.0, at_most=True))
    if "autoscale" in mine:
        rows.append(_bound("autoscale_peak_over_needed", "auto-scale peak / needed segments (worst load, simulated)",
                           mine["autoscale"]["worst_peak_over_needed"], None, 1.5, at_most=True))
    if "streams" in mine:
        streams = mine["streams"]
        rows.append(_bound("stream_creates_per_s", "stream creates/s (32 in flight, standalone)",
                           streams.get("concurrent_creates_per_s", 0.0), None, 1000.0, at_most=False))
        rows.append(_info("stream_creates_sequential_per_s", "stream creates/s (one after another)",
                          streams.get("sequential_creates_per_s", 0.0)))
        rows.append(_bound("bytes_per_idle_stream", "resident bytes per idle stream",
                           streams.get("rss_per_stream_bytes", 0), None, 2048.0, at_most=True))
    if "cluster" in mine:
        cluster = mine["cluster"]
        three = cluster["bench_write_cluster"]["events_per_s"]
        one = cluster["bench_write_cluster_1_segmentstore"]["events_per_s"]
        rows.append(_info("cluster_3_segmentstores", "cluster, 3 segment stores, 3 writers (ev/s)", three))
        rows.append(_info("cluster_1_segmentstore", "cluster, 1 segment store, 3 writers (ev/s)", one))
        rows.append(_info("standalone_3_writers", "standalone, 3 writers (ev/s)",
                          cluster["bench_write_standalone"]["events_per_s"]))
    return rows


def _info(figure: str, what: str, mine: float) -> dict[str, Any]:
    """A figure the issue asks to report without a target."""
    return {"figure": figure, "what": what, "ours": mine, "baseline": None, "ratio": None, "target": "reported",
            "met": True}


def _show(rows: list[dict[str, Any]], load: dict[str, list[float]]) -> None:
    table = Table(title=f"issue 15 figures (load before {load['before']}, after {load['after']})")
    for column in ("figure", "ours", "baseline", "ratio", "target", "met?"):
        table.add_column(column, justify="left" if column in ("figure", "target") else "right")

    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float) and value >= 1000:
            return f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    for row in rows:
        table.add_row(row["what"], fmt(row["ours"]), fmt(row["baseline"]), fmt(row["ratio"]), row["target"],
                      "[green]yes[/]" if row["met"] else "[red]no[/]")
    Console(stderr=True).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Smaller runs (about a fifth of the events).")
    parser.add_argument("--reps", type=int, default=3,
                        help="Repetitions of the throughput figures, ours and the baseline alternating (median).")
    parser.add_argument("--only", default=",".join(FIGURES),
                        help=f"Comma-separated subset of {', '.join(FIGURES)}.")
    parser.add_argument("--no-baseline", action="store_true", help="Skip the baseline (no ratios).")
    parser.add_argument("--json", action="store_true", help="No table on stderr, only the JSON line.")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; choose from {', '.join(FIGURES)}")
    sizes = QUICK if args.quick else FULL
    load_before = _load()
    started = time.time()
    base_reps: list[dict[str, Any]] = []
    mine_reps: list[dict[str, dict[str, Any]]] = []
    for _ in range(max(1, args.reps)):
        if not args.no_baseline:
            base_reps.append(baseline(sizes))
        mine_reps.append(ours_throughput(sizes, only))
    base = median_baseline(base_reps) if base_reps else {}
    mine = {**median_ours(mine_reps), **ours_once(sizes, only)}
    load = {"before": load_before, "after": _load()}
    rows = figures(base, mine, only)
    per_rep = [{row["figure"]: row["ratio"] for row in figures(b, m, only) if row["ratio"] is not None}
               for b, m in zip(base_reps, mine_reps, strict=False)]
    if not args.json:
        _show(rows, load)
    print(json.dumps({"figures": rows, "all_met": all(r["met"] for r in rows), "load": load,
                      "seconds": round(time.time() - started, 1), "sizes": sizes.__dict__,
                      "reps": max(1, args.reps), "ratios_per_rep": per_rep,
                      "baseline": base, "ours": mine}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
