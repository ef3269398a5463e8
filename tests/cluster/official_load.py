"""Load from the official Pravega client (``pravega_client``), run as its own process by the failover test.

``python official_load.py CONTROLLER_URI SCOPE STREAM COUNT RATE PROGRESS_FILE`` writes COUNT events
(``k<key>:<seq>``, routing key ``key-<key>``) at about RATE events/s with ``write_event_async``, writes the number
acknowledged so far into PROGRESS_FILE as it goes, and prints one JSON object as its last line: the events
acknowledged and the errors seen. The official client blocks in Rust holding the GIL, so the test runs this under a
hard deadline.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pravega_client

KEYS = 12


async def main(uri: str, scope: str, stream: str, count: int, rate: float, progress: Path) -> dict[str, object]:
    manager = pravega_client.StreamManager(uri)
    writer = manager.create_writer(scope, stream)
    acked: list[str] = []
    errors: list[str] = []

    async def one(data: str, key: str) -> None:
        try:
            await writer.write_event_async(data, key)
            acked.append(data)
        except Exception as exc:
            errors.append(repr(exc))

    tasks = []
    started = time.monotonic()
    last_report = 0.0
    for seq in range(count):
        key = seq % KEYS
        tasks.append(asyncio.ensure_future(one(f"k{key}:{seq // KEYS}", f"key-{key}")))
        ahead = (seq + 1) / rate - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)
        if time.monotonic() - last_report > 0.2:
            progress.write_text(str(len(acked)))
            last_report = time.monotonic()
    while tasks and not all(t.done() for t in tasks):
        progress.write_text(str(len(acked)))
        await asyncio.sleep(0.2)
    progress.write_text(str(len(acked)))
    return {"acked": acked, "errors": errors[:20], "error_count": len(errors)}


if __name__ == "__main__":
    uri, scope, stream, count, rate, progress = sys.argv[1:7]
    result = asyncio.run(main(uri, scope, stream, int(count), float(rate), Path(progress)))
    print(json.dumps(result), flush=True)
