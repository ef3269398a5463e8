"""Fuzz a real ``anabranch standalone`` over the Controller gRPC API for a long run and print the figures.

Starts a standalone in a temporary directory (or uses ``--controller HOST:PORT --pid PID`` of a running one),
creates reference data, then sends ``--requests`` hypothesis-generated requests (every rpc, field values at their
edges and anywhere in between, unknown enums, odd names and tokens, huge stream cuts), in batches of
``--check-every`` with a fresh hypothesis seed each. After every batch it checks that the controller answers a
fresh channel, the reference data is unchanged and resident memory stays under ``--rss-limit-mib``; a reply of
INTERNAL (or UNKNOWN outside the lease rpcs) or no reply within 30 s fails the run at once. Prints progress on
stderr and one JSON line of figures at the end (requests, statuses by code, peak RSS); exits 1 on a failure,
leaving the server log in place.

    python3 scripts/fuzz_grpc.py --requests 100000 --seed 7
    python3 scripts/fuzz_grpc.py --requests 5000 --check-every 500      # a quick run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from anabranch.testing.grpc_fuzz import RPCS, FuzzFailure, GrpcFuzzer, request_strategy
from anabranch.testing.processes import HOST, Standalone


def run_batch(fuzzer: GrpcFuzzer, count: int, batch_seed: int) -> None:
    @seed(batch_seed)
    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        rpc = data.draw(st.sampled_from(RPCS))
        fuzzer.call(rpc, data.draw(request_strategy(rpc)))

    one()
    fuzzer.check()


def fuzz(args: argparse.Namespace, host: str, port: int, pid: int, log: Path | None) -> int:
    fuzzer = GrpcFuzzer(host, port, pid, rss_limit_mib=args.rss_limit_mib)
    fuzzer.setup()
    started = time.monotonic()
    status = 0
    batch = 0
    try:
        while fuzzer.figures.requests < args.requests:
            count = min(args.check_every, args.requests - fuzzer.figures.requests)
            run_batch(fuzzer, count, args.seed * 100_003 + batch)
            batch += 1
            figures = fuzzer.figures
            rate = figures.requests / max(time.monotonic() - started, 1e-9)
            print(f"{figures.requests} requests ({rate:.0f}/s), {dict(figures.by_code)}, "
                  f"RSS {figures.peak_rss_mib:.0f} MiB peak", file=sys.stderr, flush=True)
    except FuzzFailure as exc:
        print(f"FAILED: {exc} (server log: {log})", file=sys.stderr)
        status = 1
    finally:
        fuzzer.close()
    seconds = round(time.monotonic() - started, 1)
    print(json.dumps({"seed": args.seed, "ok": status == 0, "seconds": seconds, **fuzzer.figures.as_dict(),
                      "by_rpc": dict(fuzzer.figures.by_rpc.most_common())}))
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--check-every", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-limit-mib", type=float, default=400.0)
    parser.add_argument("--controller", default=None, help="HOST:PORT of a running controller (needs --pid).")
    parser.add_argument("--pid", type=int, default=None, help="Process id of that controller (for its memory).")
    args = parser.parse_args()
    if args.controller is not None:
        if args.pid is None:
            parser.error("--controller needs --pid")
        host, _, port = args.controller.rpartition(":")
        return fuzz(args, host, int(port), args.pid, None)
    with tempfile.TemporaryDirectory(prefix="anabranch-grpcfuzz-") as tmp:
        server = Standalone(Path(tmp) / "data", None, None, "--admin-port", "0")
        server.start()
        try:
            status = fuzz(args, HOST, server.controller_port, server.pid, server.log_path)
        finally:
            server.kill()
        if status != 0:
            kept = Path(tempfile.gettempdir()) / f"anabranch-grpcfuzz-{int(time.time())}.log"
            kept.write_text(server.log_text())
            print(f"server log kept in {kept}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
