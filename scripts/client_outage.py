"""Measure how the default Python client rides out a server outage: kill -9 a standalone under write and read
load, keep it down, restart it on the same data dir and ports, and print what happened as one JSON line.

    python3 scripts/client_outage.py 5            # outage in seconds (default 5)
    python3 scripts/client_outage.py 170 --budget 180

The same writer and reader live through the outage (``anabranch.testing.client_outage.run_outage``). Fields:
events written / acknowledged / failed / read, acknowledged events lost and duplicates read (both must be 0),
and seconds from the restarted server listening to the first new ack and the first new event read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from anabranch.client import ClientConfig
from anabranch.testing.client_outage import run_outage
from anabranch.testing.processes import Standalone


async def measure(outage: float, budget: float | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="anabranch-outage-") as tmp:
        server = Standalone(Path(tmp) / "data")
        server.start()
        try:
            config = ClientConfig(server.controller_uri) if budget is None else \
                ClientConfig(server.controller_uri, retry_budget=budget)
            result = await run_outage(server, outage, config=config)
        finally:
            server.kill()
    return {"outage_s": outage, "written": result.written, "acked": len(result.acked), "failed": len(result.failed),
            "read": len(result.read), "acked_lost": len(result.lost), "duplicates": result.duplicates,
            "writer_resumed_s": result.write_resume_seconds, "reader_resumed_s": result.read_resume_seconds,
            "longest_read_call_s": round(result.longest_read, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outage", type=float, nargs="?", default=5.0, help="seconds the server stays down")
    parser.add_argument("--budget", type=float, default=None, help="ClientConfig.retry_budget (default: the default)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.outage, args.budget))))


if __name__ == "__main__":
    main()
