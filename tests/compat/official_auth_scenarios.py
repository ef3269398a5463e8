"""Scenarios of the official Pravega Python client against ``anabranch standalone --auth``, one per process.

``python official_auth_scenarios.py SCENARIO CONTROLLER_URI ARGS_JSON``; credentials come from the environment
(``pravega_client_auth_method``/``_username``/``_password``) exactly as the official client reads them. Each
scenario prints one JSON object (its observations) as the last line of stdout; the test asserts.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import pravega_client


def read(manager: pravega_client.StreamManager, scope: str, stream: str, group: str, expected: int,
         timeout: float = 60.0) -> list[str]:
    reader = manager.create_reader_group(group, scope, stream).create_reader("r1")
    events: list[str] = []

    async def run() -> None:
        deadline = time.monotonic() + timeout
        extra = 1
        while time.monotonic() < deadline:
            if len(events) >= expected:
                if extra == 0:
                    return
                extra -= 1
            piece = await reader.get_segment_slice_async()
            events.extend(bytes(event.data()).decode() for event in piece)
            reader.release_segment(piece)

    asyncio.run(run())
    reader.reader_offline()
    return events


def write_read(uri: str, args: dict[str, Any]) -> dict[str, Any]:
    """Create a scope and stream, write ``count`` events in bursts spread over ``seconds`` (several token
    lifetimes), read them back."""
    manager = pravega_client.StreamManager(uri, auth_enabled=True)
    scope, stream, count = args["scope"], args["stream"], args["count"]
    created = [manager.create_scope(scope), manager.create_stream(scope, stream, 2)]
    writer = manager.create_writer(scope, stream)
    bursts = 5
    for i in range(count):
        writer.write_event(f"e{i}", routing_key=f"k{i % 5}")
        if (i + 1) % (count // bursts) == 0:
            writer.flush()
            time.sleep(args["seconds"] / bursts)
    writer.flush()
    return {"created": created, "events": read(manager, scope, stream, "all", count)}


def read_only(uri: str, args: dict[str, Any]) -> dict[str, Any]:
    """As a read-only user: read the stream, then try to create a stream and to write."""
    manager = pravega_client.StreamManager(uri, auth_enabled=True)
    scope, stream = args["scope"], args["stream"]
    events = read(manager, scope, stream, "ro", args["count"])
    try:
        manager.create_stream(scope, "forbidden", 1)
        create = "created"
    except Exception as exc:
        create = str(exc)
    writer = manager.create_writer(scope, stream)
    try:
        writer.write_event("forbidden")
        writer.flush()
        write = "written"
    except BaseException as exc:  # the official client may raise PanicException (a BaseException)
        write = f"{type(exc).__name__}: {exc}"
    return {"events": events, "create": create, "write": write}


def refused(uri: str, args: dict[str, Any]) -> dict[str, Any]:
    """Create a scope with whatever credentials the environment holds (none or wrong ones)."""
    manager = pravega_client.StreamManager(uri, auth_enabled=args["auth_enabled"])
    started = time.monotonic()
    try:
        return {"created": manager.create_scope(args["scope"])}
    except BaseException as exc:
        return {"error": str(exc), "seconds": time.monotonic() - started}


SCENARIOS = {"write_read": write_read, "read_only": read_only, "refused": refused}


def main() -> None:
    name, uri, raw_args = sys.argv[1], sys.argv[2], sys.argv[3]
    print(json.dumps(SCENARIOS[name](uri, json.loads(raw_args))), flush=True)
    os._exit(0)  # the official client's Rust threads may abort a finalizing interpreter (see official_scenarios)


if __name__ == "__main__":
    main()
