"""The ``anabranch`` command: servers (standalone, controller, segmentstore), user commands, benchmarks."""

from __future__ import annotations

import logging

import click

from anabranch import __version__
from anabranch.cli.bench import bench
from anabranch.cli.cluster import cluster
from anabranch.cli.controller import controller
from anabranch.cli.kvt import kvt
from anabranch.cli.output import AnabranchGroup
from anabranch.cli.read import read
from anabranch.cli.readergroup import readergroup
from anabranch.cli.segmentstore import segmentstore
from anabranch.cli.standalone import standalone
from anabranch.cli.user import scope, stream, write
from anabranch.cli.users import apply_credentials, credentials_options, user


@click.group(cls=AnabranchGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="anabranch")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@credentials_options
def cli(log_level: str, username: str | None, password: str | None) -> None:
    """Anabranch: durable, elastic streams that speak Pravega's protocols."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kazoo").setLevel(max(logging.WARNING, logging.getLogger().level))
    apply_credentials(username, password)


for command in (standalone, controller, segmentstore, cluster, scope, stream, readergroup, kvt, read, write, bench,
                user):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="anabranch")
