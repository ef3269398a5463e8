"""``anabranch standalone``: a segment store and a controller in one asyncio loop, until SIGTERM or Ctrl-C.

With ``--tls-cert``/``--tls-key`` both ports speak TLS with that certificate, and the controller reaches its
segment store over TLS trusting exactly that certificate.

A new data directory gets ``STANDALONE_CONTAINERS`` segment containers: one. Fewer Tier-1 logs make larger group
commits: with four, a stream create's requests went to up to four logs, each with its own thread, write and
``fdatasync``, and the server spent about 35 % more CPU per create than with one. Two was the default while an idle
container kept its last checkpoint (every segment of the container) in memory, which at 100,000 streams pushed one
container's resident size past 2 KB per idle stream after a restart; since that is gone, one container creates
10-25 % more streams per second at 100 k streams than two, with the same write, read and append throughput
(``docs/performance.md``, eighth round). Its cost: a checkpoint serializes every segment of the process on the event
loop at once (about 0.5 s at 100 k streams, 200,000 segments).
"""

from __future__ import annotations

from pathlib import Path

import click

from anabranch.admin.metrics import per_container_stats
from anabranch.admin.server import start_admin
from anabranch.auth.options import auth_options, server_auth
from anabranch.auth.server import warn_if_exposed
from anabranch.cli.serving import (
    ServerCommand,
    admin_port_option,
    container_count_or_exit,
    containers_option,
    ensure_can_listen,
    lock_data_dir_or_exit,
    lts_options,
    lts_storage,
    run_server,
    server_tls,
    time_scale_option,
    tls_options,
    wait_for_stop_signal,
)
from anabranch.datadir import DataDirLock
from anabranch.embedded import start_standalone
from anabranch.segmentstore.service import SegmentStoreService
from anabranch.segmentstore.stats import AutoScaleConfig

STANDALONE_CONTAINERS = 1


async def _run(store: SegmentStoreService, controller_port: int, admin_port: int, time_scale: float,
               lock: DataDirLock) -> None:
    data_dir, host, tls = store.data_dir, store.host, store.tls
    controller = await start_standalone(store, controller_port=controller_port, time_scale=time_scale)
    secured = " (TLS)" if tls is not None else ""
    click.echo(f"segment store listening on {store.host}:{store.port}{secured} (data in {data_dir})")
    click.echo(f"controller listening on {controller.host}:{controller.port}{secured}")
    lock.describe(f"anabranch standalone: segment store {store.host}:{store.port}, "
                  f"controller {controller.host}:{controller.port}")
    click.echo(f"clients connect to {'tls' if tls is not None else 'tcp'}://{controller.host}:{controller.port}")
    assert controller.controller is not None
    admin = await start_admin(controller.controller, host, admin_port,
                              container_stats=lambda: per_container_stats(store.store) if store.store else {},
                              store_health=lambda: store.store.health() if store.store else None,
                              authenticate=store.auth.check_http if store.auth and store.auth.enabled else None)
    if admin is not None:
        click.echo(f"admin endpoint on http://{admin.host}:{admin.port}/")
    try:
        await wait_for_stop_signal()
    finally:
        if admin is not None:
            await admin.stop()
        await controller.stop()
        await store.stop()


@click.command(cls=ServerCommand)
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("anabranch-data"),
              show_default=True, help="Directory holding all data (segments and controller metadata).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address both servers listen on.")
@click.option("--controller-port", type=click.IntRange(0, 65535), default=9090, show_default=True,
              help="gRPC port of the controller.")
@click.option("--segmentstore-port", type=click.IntRange(0, 65535), default=12345, show_default=True,
              help="Wire-protocol port of the segment store.")
@containers_option
@admin_port_option
@tls_options
@lts_options
@time_scale_option
@auth_options
def standalone(data_dir: Path, host: str, controller_port: int, segmentstore_port: int, containers: int | None,
               admin_port: int, tls_cert: Path | None, tls_key: Path | None, lts_s3_bucket: str | None,
               lts_s3_prefix: str, lts_s3_endpoint: str | None, time_scale: float, auth: bool,
               password_file: Path | None, token_signing_key_file: Path | None, token_ttl: float) -> None:
    """Run a segment store and a controller in one process (the quickest way to a working Pravega)."""
    tls = server_tls(tls_cert, tls_key)
    security = server_auth(auth, password_file, token_signing_key_file, token_ttl)
    warn_if_exposed("anabranch standalone", host, auth=auth, tls=tls is not None)
    ensure_can_listen(host, segmentstore_port, "the segment store")
    ensure_can_listen(host, controller_port, "the controller")
    lock = lock_data_dir_or_exit(data_dir)
    containers = container_count_or_exit(lock, containers, STANDALONE_CONTAINERS)
    store = SegmentStoreService(data_dir, host, segmentstore_port, container_count=containers,
                                tls=tls, auth=security,
                                lts=lts_storage(lts_s3_bucket, lts_s3_prefix, lts_s3_endpoint),
                                autoscale=AutoScaleConfig.compressed(time_scale))
    run_server(_run(store, controller_port, admin_port, time_scale, lock), "anabranch standalone", lock)
