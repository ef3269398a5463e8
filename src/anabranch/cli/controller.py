"""``anabranch controller``: run the controller (gRPC control plane) against a running segment store."""

from __future__ import annotations

import asyncio

import click

from anabranch.admin.server import start_admin
from anabranch.cli.serving import admin_port_option, wait_for_stop_signal
from anabranch.controller.service import ControllerService


def parse_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


async def _run(service: ControllerService, admin_port: int) -> None:
    await service.start()
    click.echo(f"controller listening on {service.host}:{service.port} "
               f"(segment store {service.segment_store_host}:{service.segment_store_port})")
    assert service.controller is not None
    admin = await start_admin(service.controller, service.host, admin_port)
    if admin is not None:
        click.echo(f"admin endpoint on http://{admin.host}:{admin.port}/")
    try:
        await wait_for_stop_signal()
    finally:
        if admin is not None:
            await admin.stop()
        await service.stop()


@click.command()
@click.option("--segmentstore", "segment_store", required=True, help="HOST:PORT of the segment store.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=9090, show_default=True,
              help="gRPC port (0 picks a free port).")
@admin_port_option
def controller(segment_store: str, host: str, port: int, admin_port: int) -> None:
    """Run a controller serving Pravega's Controller gRPC API; all metadata lives on the segment store."""
    ss_host, ss_port = parse_endpoint(segment_store)
    asyncio.run(_run(ControllerService(ss_host, ss_port, host=host, port=port), admin_port))
