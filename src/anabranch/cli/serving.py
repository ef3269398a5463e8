"""What the server commands (standalone, segmentstore, controller) share: stopping on a signal, common options."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from anabranch.tls import ServerTls, TlsConfigError

F = TypeVar("F", bound=Callable[..., object])

containers_option = click.option(
    "--containers", type=click.IntRange(1, 1024), default=4, show_default=True,
    help="Segment containers; fixed for the life of the data directory.",
)
admin_port_option = click.option(
    "--admin-port", type=click.IntRange(0, 65535), default=9091, show_default=True,
    help="HTTP port of the admin endpoint (health, metrics, stream descriptions); 0 turns it off.",
)

_cert_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def tls_options(command: F) -> F:
    """``--tls-cert FILE --tls-key FILE``: serve TLS (both or neither; neither keeps plaintext)."""
    command = click.option("--tls-key", type=_cert_file, default=None,
                           help="PEM private key of --tls-cert.")(command)
    return click.option("--tls-cert", type=_cert_file, default=None,
                        help="PEM certificate (chain) to serve TLS with; needs --tls-key. Without both: plaintext.",
                        )(command)


def server_tls(cert_file: Path | None, key_file: Path | None) -> ServerTls | None:
    """The TLS settings from ``--tls-cert``/``--tls-key`` (None for plaintext); bad files stop the command."""
    try:
        return ServerTls.from_options(cert_file, key_file)
    except TlsConfigError as exc:
        raise click.UsageError(str(exc)) from exc


async def wait_for_stop_signal() -> None:
    """Return once SIGTERM or SIGINT (Ctrl-C) arrives; the caller then stops its servers cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
