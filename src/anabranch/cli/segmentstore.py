"""``anabranch segmentstore``: run the segment store (data plane) alone until SIGTERM or Ctrl-C.

With ``--zookeeper`` it is a cluster member: it registers in ZooKeeper and runs the containers the controllers
assign it, over NATS JetStream (``--tier1``) and a long-term storage every member shares (``--lts-dir`` or S3).
A configuration error or an unreachable engine at start ends the command with one line and exit code 1.
"""

from __future__ import annotations

import cProfile
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from anabranch.auth.options import auth_options, server_auth
from anabranch.auth.server import warn_if_exposed
from anabranch.cli.serving import (
    ServerCommand,
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
from anabranch.cluster.layout import DEFAULT_CLUSTER
from anabranch.cluster.zk import DEFAULT_SESSION_TIMEOUT
from anabranch.datadir import DataDirLock
from anabranch.errors import AnabranchError
from anabranch.segmentstore.service import MIB, SegmentStoreService
from anabranch.segmentstore.stats import AutoScaleConfig
from anabranch.storage.chunks_fs import FileSystemChunkStorage

if TYPE_CHECKING:
    from anabranch.cluster.segmentstore_member import ClusterOptions

PROFILE_ENV = "ANABRANCH_PROFILE"
"""When set, the process runs under cProfile and writes its statistics to this path on exit."""
SEGMENTSTORE_CONTAINERS = 4
"""Segment containers of a new data directory (and, in cluster mode without --containers, the count proposed)."""


async def _run(service: SegmentStoreService, lock: DataDirLock) -> None:
    kazoo_log = logging.getLogger("kazoo")
    level = kazoo_log.level
    kazoo_log.setLevel(logging.ERROR)  # its connection retries at start would bury the one line that matters
    try:
        await service.start()
    except AnabranchError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        kazoo_log.setLevel(level)
    secured = " (TLS)" if service.tls is not None else ""
    click.echo(f"segment store listening on {service.host}:{service.port}{secured} (data in {service.data_dir})")
    lock.describe(f"anabranch segmentstore {service.host}:{service.port}")
    try:
        await wait_for_stop_signal()
    finally:
        await service.stop()


@click.command(cls=ServerCommand)
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("anabranch-data"),
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
@click.option("--lts-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep long-term storage in this directory instead of DATA_DIR/lts (in a cluster: a directory "
                   "every segment store shares).")
@click.option("--zookeeper", default=None, metavar="HOST:PORT[,...]",
              help="Join the cluster coordinated by this ZooKeeper ensemble (needs --tier1 and a shared LTS).")
@click.option("--tier1", default=None, metavar="nats://HOST:PORT[,...]",
              help="Cluster mode: the NATS JetStream servers holding the Tier-1 logs.")
@click.option("--cluster", "cluster_name", default=DEFAULT_CLUSTER, show_default=True,
              help="Cluster mode: the cluster's name (its ZooKeeper root /anabranch/NAME).")
@click.option("--host-id", default=None, help="Cluster mode: this segment store's id [default: HOST:PORT].")
@click.option("--zookeeper-session-timeout", type=click.FloatRange(1.0, 60.0), default=DEFAULT_SESSION_TIMEOUT,
              show_default=True, help="Cluster mode: seconds after which a silent segment store's containers move.")
@time_scale_option
@auth_options
def segmentstore(data_dir: Path, host: str, port: int, containers: int | None, cache_size: int,
                 tail_read_timeout: float, tls_cert: Path | None, tls_key: Path | None, lts_s3_bucket: str | None,
                 lts_s3_prefix: str, lts_s3_endpoint: str | None, lts_dir: Path | None, zookeeper: str | None,
                 tier1: str | None, cluster_name: str, host_id: str | None, zookeeper_session_timeout: float,
                 time_scale: float, auth: bool, password_file: Path | None, token_signing_key_file: Path | None,
                 token_ttl: float) -> None:
    """Run a segment store serving the Pravega wire protocol."""
    tls = server_tls(tls_cert, tls_key)
    security = server_auth(auth, password_file, token_signing_key_file, token_ttl, need_key_file=auth,
                           authenticates=False, what="a segment store with --auth")
    warn_if_exposed("the segment store", host, auth=auth, tls=tls is not None)
    lts = lts_storage(lts_s3_bucket, lts_s3_prefix, lts_s3_endpoint)
    if lts_dir is not None:
        if lts is not None:
            raise click.UsageError("use --lts-dir or --lts-s3-bucket, not both")
        lts = FileSystemChunkStorage(lts_dir)
    cluster = _cluster_options(zookeeper, tier1, cluster_name, host_id, zookeeper_session_timeout, lts is not None)
    ensure_can_listen(host, port, "the segment store")
    lock = lock_data_dir_or_exit(data_dir)
    if cluster is None:
        containers = container_count_or_exit(lock, containers, SEGMENTSTORE_CONTAINERS)
    service = SegmentStoreService(data_dir, host, port, container_count=containers or SEGMENTSTORE_CONTAINERS,
                                  cache_size=cache_size * MIB, tail_read_timeout=tail_read_timeout, tls=tls,
                                  auth=security, lts=lts, autoscale=AutoScaleConfig.compressed(time_scale),
                                  cluster=cluster)
    profile_path = os.environ.get(PROFILE_ENV)
    if not profile_path:
        run_server(_run(service, lock), "anabranch segmentstore", lock)
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(run_server, _run(service, lock), "anabranch segmentstore", lock)
    finally:
        profiler.dump_stats(profile_path)


def _cluster_options(zookeeper: str | None, tier1: str | None, name: str, host_id: str | None,
                     session_timeout: float, shared_lts: bool) -> ClusterOptions | None:
    """Cluster mode's options, or None for a segment store on its own; bad combinations are usage errors."""
    ctx = click.get_current_context()
    cluster_only = [flag for flag, param in (("--tier1", "tier1"), ("--cluster", "cluster_name"),
                                             ("--host-id", "host_id"))
                    if ctx.get_parameter_source(param) is not click.core.ParameterSource.DEFAULT]
    if zookeeper is None:
        if cluster_only:
            raise click.UsageError(f"{', '.join(cluster_only)} only make sense with --zookeeper")
        return None
    if tier1 is None:
        raise click.UsageError("cluster mode (--zookeeper) needs --tier1 nats://HOST:PORT[,...]")
    if not shared_lts:
        raise click.UsageError("cluster mode (--zookeeper) needs a long-term storage every segment store shares: "
                               "--lts-dir DIR or --lts-s3-bucket BUCKET")
    from anabranch.cluster.segmentstore_member import ClusterOptions, parse_tier1

    try:
        servers = parse_tier1(tier1)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tier1") from None
    return ClusterOptions(zookeeper, servers, name, host_id, session_timeout)
