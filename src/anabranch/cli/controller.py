"""``anabranch controller``: run the controller (gRPC control plane) against a running segment store."""

from __future__ import annotations

from pathlib import Path

import click

from anabranch.admin.console import zk_cluster_info
from anabranch.admin.server import start_admin
from anabranch.auth.options import auth_options, server_auth
from anabranch.auth.server import warn_if_exposed
from anabranch.cli.serving import (
    ServerCommand,
    admin_port_option,
    ensure_can_listen,
    run_server,
    server_tls,
    time_scale_option,
    tls_options,
    wait_for_stop_signal,
)
from anabranch.cluster.controller_cluster import ControllerClusterOptions
from anabranch.cluster.layout import DEFAULT_CLUSTER
from anabranch.cluster.zk import DEFAULT_SESSION_TIMEOUT
from anabranch.controller.service import ControllerService
from anabranch.tls import TlsConfigError, client_ssl_context


def parse_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


async def _run(service: ControllerService, admin_port: int) -> None:
    await service.start()
    secured = " (TLS)" if service.tls is not None else ""
    click.echo(f"controller listening on {service.host}:{service.port}{secured} "
               f"(segment store {service.segment_stores()})")
    assert service.controller is not None
    member = service.member
    admin = await start_admin(service.controller, service.host, admin_port,
                              authenticate=service.auth.check_http if service.auth and service.auth.enabled else None,
                              cluster_info=zk_cluster_info(member.zk, member.paths) if member is not None else None)
    if admin is not None:
        click.echo(f"admin endpoint on http://{admin.host}:{admin.port}/")
    try:
        await wait_for_stop_signal()
    finally:
        if admin is not None:
            await admin.stop()
        await service.stop()


@click.command(cls=ServerCommand)
@click.option("--segmentstore", "segment_store", default=None,
              help="HOST:PORT of the segment store (single segment store; or use --zookeeper).")
@click.option("--zookeeper", default=None, metavar="HOST:PORT[,...]",
              help="Cluster mode: join the cluster coordinated by this ZooKeeper ensemble (no --segmentstore).")
@click.option("--cluster", "cluster_name", default=DEFAULT_CLUSTER, show_default=True,
              help="Cluster mode: the cluster's name (its ZooKeeper root /anabranch/NAME).")
@click.option("--containers", type=click.IntRange(1, 1024), default=None,
              help="Cluster mode: the container count to record if the cluster has none yet (must match it "
                   "otherwise) [default: the cluster's].")
@click.option("--zookeeper-session-timeout", type=click.FloatRange(1.0, 60.0), default=DEFAULT_SESSION_TIMEOUT,
              show_default=True, help="Cluster mode: seconds after which a silent controller loses leadership.")
@click.option("--rebalance-interval", type=click.FloatRange(0.0, 600.0), default=1.0, show_default=True,
              help="Cluster mode: least seconds between two rewrites of the container map (the leader batches "
                   "segment-store changes meanwhile).")
@click.option("--startup-timeout", type=click.FloatRange(1.0, 3600.0), default=60.0, show_default=True,
              help="Seconds to wait for the segment store(s) (in a cluster: to own every container) at start.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=9090, show_default=True,
              help="gRPC port (0 picks a free port).")
@admin_port_option
@tls_options
@click.option("--segmentstore-trust-store", type=click.Path(exists=True, path_type=Path), default=None,
              help="Reach the segment store over TLS, trusting the CA certificates in this PEM file or directory "
                   "(its certificate must name the --segmentstore host).")
@time_scale_option
@auth_options
def controller(segment_store: str | None, zookeeper: str | None, cluster_name: str, containers: int | None,
               zookeeper_session_timeout: float, rebalance_interval: float, startup_timeout: float, host: str,
               port: int, admin_port: int, tls_cert: Path | None,
               tls_key: Path | None, segmentstore_trust_store: Path | None, time_scale: float, auth: bool,
               password_file: Path | None, token_signing_key_file: Path | None, token_ttl: float) -> None:
    """Run a controller serving Pravega's Controller gRPC API; all metadata lives on the segment store."""
    if (segment_store is None) == (zookeeper is None):
        raise click.UsageError("give either --segmentstore HOST:PORT (one segment store) or --zookeeper "
                               "HOST:PORT[,...] (cluster mode)")
    ss_host, ss_port = parse_endpoint(segment_store) if segment_store is not None else ("", 0)
    cluster = None
    if zookeeper is not None:
        cluster = ControllerClusterOptions(zookeeper, cluster_name, containers,
                                           session_timeout=zookeeper_session_timeout,
                                           rebalance_interval=rebalance_interval)
    tls = server_tls(tls_cert, tls_key)
    security = server_auth(auth, password_file, token_signing_key_file, token_ttl, need_key_file=True,
                           what="anabranch controller")
    warn_if_exposed("the controller", host, auth=auth, tls=tls is not None)
    try:
        ss_ssl = client_ssl_context(segmentstore_trust_store) if segmentstore_trust_store is not None else None
    except TlsConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    ensure_can_listen(host, port, "the controller")
    service = ControllerService(ss_host, ss_port, host=host, port=port, tls=tls, segment_store_ssl=ss_ssl,
                                time_scale=time_scale, auth=security, cluster=cluster,
                                startup_timeout=startup_timeout)
    run_server(_run(service, admin_port), "anabranch controller")
