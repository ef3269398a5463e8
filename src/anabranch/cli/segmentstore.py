"""``anabranch segmentstore``: run the segment store (data plane) alone until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import cProfile
import os
from pathlib import Path

import click

from anabranch.cli.serving import (
    containers_option,
    lts_options,
    lts_storage,
    server_tls,
    time_scale_option,
    tls_options,
    wait_for_stop_signal,
)
from anabranch.segmentstore.service import MIB, SegmentStoreService
from anabranch.segmentstore.stats import AutoScaleConfig

PROFILE_ENV = "ANABRANCH_PROFILE"
"""When set, the process runs under cProfile and writes its statistics to this path on exit."""


async def _run(service: SegmentStoreService) -> None:
    await service.start()
    secured = " (TLS)" if service.tls is not None else ""
    click.echo(f"segment store listening on {service.host}:{service.port}{secured} (data in {service.data_dir})")
    try:
        await wait_for_stop_signal()
    finally:
        await service.stop()


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("anabranch-data"),
              show_default=True, help="Directory holding the Tier-1 logs and LTS data.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=12345, show_default=True,
              help="TCP port of the wire protocol (0 picks a free port).")
@containers_option
@click.option("--cache-size", type=click.IntRange(1), default=256, show_default=True, help="Read cache in MiB.")
@click.option("--tail-read-timeout", type=click.FloatRange(0.1), default=20.0, show_default=True,
              help="Seconds a read at the tail of a segment waits for data.")
@tls_options
@lts_options
@time_scale_option
def segmentstore(data_dir: Path, host: str, port: int, containers: int, cache_size: int,
                 tail_read_timeout: float, tls_cert: Path | None, tls_key: Path | None, lts_s3_bucket: str | None,
                 lts_s3_prefix: str, lts_s3_endpoint: str | None, time_scale: float) -> None:
    """Run a segment store serving the Pravega wire protocol."""
    service = SegmentStoreService(data_dir, host, port, container_count=containers, cache_size=cache_size * MIB,
                                  tail_read_timeout=tail_read_timeout, tls=server_tls(tls_cert, tls_key),
                                  lts=lts_storage(lts_s3_bucket, lts_s3_prefix, lts_s3_endpoint),
                                  autoscale=AutoScaleConfig.compressed(time_scale))
    profile_path = os.environ.get(PROFILE_ENV)
    if not profile_path:
        asyncio.run(_run(service))
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(asyncio.run, _run(service))
    finally:
        profiler.dump_stats(profile_path)
