"""Load from the official Pravega client (``pravega_client``), run as its own process by the failover test.

``python official_load.py CONTROLLER_URI SCOPE STREAM COUNT RATE PROGRESS_FILE`` writes COUNT events
(``k<key>:<seq>``, routing key ``key-<key>``) at about RATE events/s with the blocking ``write_event`` (which queues
events in call order; up to 100 outstanding), calls ``flush()`` every 50 events and counts the events written so far
as acknowledged when it returns, writes that count into PROGRESS_FILE, and prints one JSON object as its last line:
the events acknowledged and the errors seen. (``write_event_async`` calls that are not awaited one by one may reach
the writer in any order, so they cannot be used to check per-key order.) The official client blocks in Rust holding
the GIL, so the test runs this under a hard deadline.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pravega_client

KEYS = 12
FLUSH_EVERY = 50


def main(uri: str, scope: str, stream: str, count: int, rate: float, progress: Path) -> dict[str, object]:
    manager = pravega_client.StreamManager(uri)
    writer = manager.create_writer(scope, stream, max_inflight_events=100)
    written: list[str] = []
    acked = 0
    errors: list[str] = []
    started = time.monotonic()
    for seq in range(count):
        key = seq % KEYS
        data = f"k{key}:{seq // KEYS}"
        try:
            writer.write_event(data, f"key-{key}")
            written.append(data)
        except Exception as exc:
            errors.append(repr(exc))
        if len(written) - acked >= FLUSH_EVERY or seq == count - 1:
            try:
                writer.flush()
                acked = len(written)
            except Exception as exc:
                errors.append(repr(exc))
            progress.write_text(str(acked))
        ahead = (seq + 1) / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    return {"acked": written[:acked], "errors": errors[:20], "error_count": len(errors)}


if __name__ == "__main__":
    uri, scope, stream, count, rate, progress = sys.argv[1:7]
    print(json.dumps(main(uri, scope, stream, int(count), float(rate), Path(progress))), flush=True)
