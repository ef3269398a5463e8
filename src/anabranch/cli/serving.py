"""What the server commands (standalone, segmentstore, controller) share: stopping on a signal, common options."""

from __future__ import annotations

import asyncio
import signal

import click

containers_option = click.option(
    "--containers", type=click.IntRange(1, 1024), default=4, show_default=True,
    help="Segment containers; fixed for the life of the data directory.",
)
admin_port_option = click.option(
    "--admin-port", type=click.IntRange(0, 65535), default=9091, show_default=True,
    help="HTTP port of the admin endpoint (health, metrics, stream descriptions); 0 turns it off.",
)


async def wait_for_stop_signal() -> None:
    """Return once SIGTERM or SIGINT (Ctrl-C) arrives; the caller then stops its servers cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
