"""Fuzz a real ``anabranch segmentstore`` process over the wire for a long run and print the figures.

Starts a segment store in a temporary directory (small cache, short tail-read timeout), writes reference data,
then sends ``--frames`` fuzzed frames (every request type, field values at their edges, mutated frames) over
many short connections. After every ``--check-every`` frames it checks that the reference data is intact, a
fresh connection is answered, every container still takes a write and resident memory stays under
``--rss-limit-mib``. Prints one JSON line of figures at the end (and progress lines on stderr); exits 1 on the
first failed check, leaving the server log in place.

    python3 scripts/fuzz_wire.py --frames 1000000 --seed 7
    python3 scripts/fuzz_wire.py --frames 20000 --check-every 1000      # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from anabranch.testing.processes import HOST, SegmentStoreProcess
from anabranch.testing.wire_fuzz import FuzzFailure, WireFuzzer


async def fuzz(args: argparse.Namespace, server: SegmentStoreProcess) -> int:
    fuzzer = WireFuzzer(HOST, server.segmentstore_port, server.pid, seed=args.seed, containers=args.containers,
                        rss_limit_mib=args.rss_limit_mib, log_path=server.log_path)
    await fuzzer.setup()
    started = time.monotonic()
    status = 0
    try:
        while fuzzer.figures.frames_sent < args.frames:
            target = min(args.frames, fuzzer.figures.frames_sent + args.report_every)
            await fuzzer.run(target, check_every=args.check_every)
            figures = fuzzer.figures
            rate = figures.frames_sent / max(time.monotonic() - started, 1e-9)
            print(f"{figures.frames_sent} frames ({rate:.0f}/s), {figures.replies} replies, "
                  f"{figures.connections_closed_by_server}/{figures.connections} connections closed by the server, "
                  f"peak RSS {figures.peak_rss_mib} MiB", file=sys.stderr, flush=True)
    except FuzzFailure as exc:
        print(f"FAILED: {exc} (server log: {server.log_path})", file=sys.stderr)
        status = 1
    fuzzer.figures.seconds = round(time.monotonic() - started, 1)
    print(json.dumps({"seed": args.seed, "ok": status == 0, **fuzzer.figures.as_dict()}))
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check-every", type=int, default=5000)
    parser.add_argument("--report-every", type=int, default=50_000)
    parser.add_argument("--containers", type=int, default=4)
    parser.add_argument("--cache-size", type=int, default=64, help="read cache of the server in MiB")
    parser.add_argument("--rss-limit-mib", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the data directory and log")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="anabranch-fuzz-"))
    server = SegmentStoreProcess(root / "data", None, "--containers", str(args.containers), "--cache-size",
                                 str(args.cache_size), "--tail-read-timeout", "0.5")
    server.start()
    try:
        return asyncio.run(fuzz(args, server))
    finally:
        server.stop()
        if not args.keep:
            print(f"server log and data: {root}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
