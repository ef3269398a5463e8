"""What the server commands (standalone, segmentstore, controller) share: stopping on a signal, common options,
the data directory's lock and one-line start-up errors (``run_server``)."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from anabranch.datadir import DataDirError, DataDirLock, lock_data_dir, settle_container_count
from anabranch.errors import AnabranchError
from anabranch.gc_policy import tune_for_server
from anabranch.storage.interfaces import ChunkStorage
from anabranch.tls import ServerTls, TlsConfigError

F = TypeVar("F", bound=Callable[..., object])

class FlagCombinationError(click.ClickException):
    """Flags that parse but do not go together: one line on stderr, exit code 2 (as a usage error)."""

    exit_code = 2


class ServerCommand(click.Command):
    """A server command: a usage error its body raises (flags that do not go together, a TLS or key file that
    cannot be used) is one line on stderr, not the usage text; parse errors keep click's usual output."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise FlagCombinationError(f"{exc.format_message()} (see 'anabranch {ctx.info_name} --help')") from None


containers_option = click.option(
    "--containers", type=click.IntRange(1, 1024), default=None,
    help="Segment containers, fixed for the life of the data directory [default: the directory's; a new one gets 2 "
         "in a standalone, 4 in a segment store].",
)
admin_port_option = click.option(
    "--admin-port", type=click.IntRange(0, 65535), default=9091, show_default=True,
    help="HTTP port of the admin endpoint (health, metrics, stream descriptions); 0 turns it off.",
)

time_scale_option = click.option(
    "--autoscale-time-scale", "time_scale", type=click.FloatRange(min=1.0), default=1.0, show_default=True,
    help="Divide the windows, cool-downs and periods of auto-scaling, retention and watermarks by this factor "
         "(to watch a stream scale in minutes instead of hours); 1 keeps Pravega's timing.",
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


def lts_options(command: F) -> F:
    """``--lts-s3-bucket B [--lts-s3-prefix P] [--lts-s3-endpoint URL]``: keep LTS in an S3-compatible bucket."""
    command = click.option("--lts-s3-endpoint", default=None,
                           help="Endpoint URL of an S3-compatible store (default: AWS). Credentials come from the "
                                "usual AWS environment variables or files.")(command)
    command = click.option("--lts-s3-prefix", default="anabranch/", show_default=True,
                           help="Key prefix of LTS chunks in the bucket.")(command)
    return click.option("--lts-s3-bucket", default=None,
                        help="Keep long-term storage in this S3 bucket instead of DATA_DIR/lts.")(command)


def lts_storage(bucket: str | None, prefix: str, endpoint: str | None) -> ChunkStorage | None:
    """The chunk storage chosen by the ``--lts-s3-*`` options (None: the filesystem default)."""
    if bucket is None:
        if endpoint is not None:
            raise click.UsageError("--lts-s3-endpoint needs --lts-s3-bucket")
        return None
    try:
        import boto3
    except ImportError as exc:
        raise click.UsageError("S3 long-term storage needs boto3: pip install 'anabranch[s3]'") from exc
    from anabranch.storage.chunks_s3 import S3ChunkStorage

    return S3ChunkStorage(bucket, prefix, boto3.client("s3", endpoint_url=endpoint))


async def wait_for_stop_signal() -> None:
    """Return once SIGTERM or SIGINT (Ctrl-C) arrives; the caller then stops its servers cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def lock_data_dir_or_exit(data_dir: Path) -> DataDirLock:
    """Take the data directory's exclusive lock, or end the command with one line naming the holder."""
    try:
        return lock_data_dir(data_dir)
    except DataDirError as exc:
        raise click.ClickException(str(exc)) from None


def container_count_or_exit(lock: DataDirLock, requested: int | None, default: int) -> int:
    """The locked data directory's container count (``settle_container_count``), or end the command with one line
    (the lock released)."""
    try:
        return settle_container_count(lock.data_dir, requested, default)
    except DataDirError as exc:
        lock.release()
        raise click.ClickException(str(exc)) from None


def run_server(main: Coroutine[Any, Any, None], what: str, lock: DataDirLock | None = None) -> None:
    """Run a server command's main coroutine until it returns. A failure to start (a port in use, a data
    directory that cannot be used, an engine that cannot be reached) ends the command with one line on stderr
    and exit code 1, never a traceback. The data directory's lock, if any, is released at the end."""
    tune_for_server()
    try:
        asyncio.run(main)
    except click.ClickException:
        raise
    except AnabranchError as exc:
        raise click.ClickException(f"{what}: {exc}") from None
    except OSError as exc:
        detail = exc.strerror or str(exc)
        if exc.filename is not None:
            detail = f"{detail}: {exc.filename}"
        raise click.ClickException(f"{what} cannot start: {detail}") from None
    finally:
        if lock is not None:
            lock.release()


def ensure_can_listen(host: str, port: int, what: str) -> None:
    """Fail at once, with one line, if ``host:port`` cannot be listened on (before any data is opened or
    recovered; gRPC would only report it on its own log after the controller's start-up work)."""
    if port == 0:
        return
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise click.ClickException(f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}") from None
