"""``anabranch standalone``: a segment store and a controller in one asyncio loop, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from anabranch.admin.server import start_admin
from anabranch.cli.serving import admin_port_option, containers_option, wait_for_stop_signal
from anabranch.controller.service import ControllerService
from anabranch.segmentstore.service import SegmentStoreService


async def _run(data_dir: Path, host: str, controller_port: int, segmentstore_port: int, containers: int,
               admin_port: int) -> None:
    store = SegmentStoreService(data_dir, host, segmentstore_port, container_count=containers)
    await store.start()
    click.echo(f"segment store listening on {store.host}:{store.port} (data in {data_dir})")
    controller = ControllerService(host, store.port, host=host, port=controller_port)
    try:
        await controller.start()
    except BaseException:
        await store.stop()
        raise
    click.echo(f"controller listening on {controller.host}:{controller.port}")
    click.echo(f"clients connect to tcp://{controller.host}:{controller.port}")
    assert controller.controller is not None
    admin = await start_admin(controller.controller, host, admin_port,
                              segment_store_stats=lambda: store.store.statistics() if store.store else {})
    if admin is not None:
        click.echo(f"admin endpoint on http://{admin.host}:{admin.port}/")
    try:
        await wait_for_stop_signal()
    finally:
        if admin is not None:
            await admin.stop()
        await controller.stop()
        await store.stop()


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("anabranch-data"),
              show_default=True, help="Directory holding all data (segments and controller metadata).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address both servers listen on.")
@click.option("--controller-port", type=click.IntRange(0, 65535), default=9090, show_default=True,
              help="gRPC port of the controller.")
@click.option("--segmentstore-port", type=click.IntRange(0, 65535), default=12345, show_default=True,
              help="Wire-protocol port of the segment store.")
@containers_option
@admin_port_option
def standalone(data_dir: Path, host: str, controller_port: int, segmentstore_port: int, containers: int,
               admin_port: int) -> None:
    """Run a segment store and a controller in one process (the quickest way to a working Pravega)."""
    asyncio.run(_run(data_dir, host, controller_port, segmentstore_port, containers, admin_port))
