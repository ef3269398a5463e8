"""``anabranch cluster up | status | down``: a whole cluster on one machine, to try cluster mode.

``up`` starts ZooKeeper, a 3-node NATS JetStream cluster and the Anabranch processes (``LocalCluster``), prints the
controller URIs and runs in the foreground; SIGTERM or Ctrl-C stops everything it started. ``status`` reports on
the cluster running from a data directory (``--json`` for one JSON document); ``down`` asks its ``up`` to stop.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from anabranch.cluster.local import LocalCluster, LocalClusterConfig, cluster_status, pid_alive
from anabranch.errors import AnabranchError

data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                               default=Path("anabranch-cluster"), show_default=True,
                               help="Where the cluster keeps its data, logs and cluster.json.")


@click.group()
def cluster() -> None:
    """Run a cluster (ZooKeeper, NATS JetStream Tier-1, segment stores, controllers) on this machine."""


@cluster.command()
@data_dir_option
@click.option("--segmentstores", type=click.IntRange(1, 32), default=3, show_default=True)
@click.option("--controllers", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--containers", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="Segment containers, spread over the segment stores; fixed for the cluster's life.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address every process listens on.")
@click.option("--name", default="anabranch", show_default=True, help="Cluster name (ZooKeeper root).")
@click.option("--ready-timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Seconds to wait until every container is served.")
def up(data_dir: Path, segmentstores: int, controllers: int, containers: int, host: str, name: str,
       ready_timeout: float) -> None:
    """Start a cluster and run it in the foreground until SIGTERM or Ctrl-C."""
    state = data_dir / "cluster.json"
    if state.exists():
        running = json.loads(state.read_text()).get("pid")
        if running and pid_alive(running):
            raise click.ClickException(f"a cluster already runs from {data_dir} (pid {running}); "
                                       "`anabranch cluster down` stops it")
    config = LocalClusterConfig(data_dir, segmentstores=segmentstores, controllers=controllers, host=host,
                                containers=containers, name=name)
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        local = LocalCluster(config)
        click.echo(f"starting ZooKeeper, NATS JetStream, {segmentstores} segment stores and {controllers} "
                   f"controllers under {data_dir} ...", err=True)
        local.start()
    except (AnabranchError, OSError, TimeoutError, RuntimeError) as exc:
        raise click.ClickException(f"cluster did not start: {exc}") from exc
    try:
        try:
            local.wait_ready(ready_timeout)
        except TimeoutError:
            click.echo(f"warning: not every container is served after {ready_timeout:g} s; "
                       f"see {data_dir / 'logs'}", err=True)
        for uri in local.controller_uris:
            click.echo(f"controller {uri}")
        click.echo(f"client URI {local.controller_uri}")
        click.echo("cluster ready; Ctrl-C or `anabranch cluster down` stops it", err=True)
        while not stop_requested:
            time.sleep(0.2)
    finally:
        click.echo("stopping the cluster ...", err=True)
        local.stop()


@cluster.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def status(data_dir: Path, as_json: bool) -> None:
    """Report on the cluster running from --data-dir (exit code 1 when none runs, 2 when it is not ready)."""
    try:
        report = cluster_status(data_dir)
    except AnabranchError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        _render(report)
    if not report["ready"]:
        sys.exit(2)


@cluster.command()
@data_dir_option
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True)
def down(data_dir: Path, timeout: float) -> None:
    """Stop the cluster running from --data-dir (SIGTERM to its `cluster up`, then wait)."""
    state = data_dir / "cluster.json"
    if not state.exists():
        click.echo(f"Error: no cluster runs from {data_dir}", err=True)
        sys.exit(1)
    pid = int(json.loads(state.read_text())["pid"])
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise click.ClickException(f"`cluster up` (pid {pid}) still runs after {timeout:g} s")
        time.sleep(0.1)
    click.echo("cluster stopped")


def _render(report: dict[str, Any]) -> None:
    console = Console()
    console.print(f"cluster [bold]{report['name']}[/bold]: {'ready' if report['ready'] else 'NOT ready'}, "
                  f"{report['containers']} containers")
    table = Table("segment store", "pid", "alive", "containers", "serving")
    for s in report["segmentstores"]:
        table.add_row(s["endpoint"], str(s["pid"]), "yes" if s["alive"] else "no",
                      " ".join(str(c) for c in s["containers"]) or "-", " ".join(str(c) for c in s["serving"]) or "-")
    console.print(table)
    table = Table("controller", "pid", "alive", "admin")
    for c in report["controllers"]:
        table.add_row(c["uri"], str(c["pid"]), "yes" if c["alive"] else "no", c["admin"])
    console.print(table)
    zk, tier1 = report["zookeeper"], report["tier1"]
    console.print(f"ZooKeeper {zk['connect']} ({'up' if zk['alive'] else 'DOWN'}); "
                  f"Tier-1 NATS JetStream {', '.join(tier1['urls'])} ({'up' if tier1['alive'] else 'DOWN'})")
