"""``anabranch read SCOPE/STREAM``: print a stream's events, one per line, as a member of a reader group.

Without ``--group`` a private group is created for this run (and deleted afterwards); with ``--group`` the
named group is created if missing or joined if it exists, so several ``read`` commands share the events.
A new group starts at the tail, or at the head with ``--from-head``. Reading stops at the end of a sealed
stream, after ``--timeout`` seconds without events, or on Ctrl-C; the reader always goes offline cleanly.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import click

from anabranch.cli.output import EXIT_INTERRUPTED
from anabranch.cli.user import controller_option, split_stream
from anabranch.client.config import ClientConfig
from anabranch.client.reader_group import ReaderGroupConfig
from anabranch.client.stream_manager import StreamManager
from anabranch.errors import AnabranchError


async def _read(controller: str, scope: str, stream: str, group_name: str | None, from_head: bool,
                timeout: float | None) -> int:
    async with StreamManager(ClientConfig(controller, retry_attempts=3)) as manager:
        private = group_name is None
        name = group_name or f"cli-{uuid.uuid4().hex[:12]}"
        config = ReaderGroupConfig.for_streams(scope, stream, read_from_tail=not from_head, group_refresh_time=1.0)
        group = await manager.create_reader_group(scope, name, config)
        reader = await group.create_reader(f"cli-{uuid.uuid4().hex[:12]}")
        count = 0
        loop = asyncio.get_running_loop()
        last_event = loop.time()
        try:
            while timeout is None or loop.time() - last_event < timeout:
                wait = 1.0 if timeout is None else max(0.0, min(1.0, timeout - (loop.time() - last_event)))
                read = await reader.read_next_event(timeout=wait)
                if read.event is not None:
                    sys.stdout.write(bytes(read.event).decode("utf-8", "replace") + "\n")
                    count += 1
                    last_event = loop.time()
                elif read.checkpoint_name is None and (await group.state()).is_finished:
                    break
            sys.stdout.flush()
        finally:
            await reader.close()
            if private:
                await group.delete()
        return count


@click.command()
@click.argument("name", metavar="SCOPE/STREAM")
@click.option("--group", "group_name", default=None, help="Reader group to join (created if missing).")
@click.option("--from-head", is_flag=True, help="A new group starts at the head instead of the tail.")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds without an event.")
@controller_option
def read(name: str, group_name: str | None, from_head: bool, timeout: float | None, controller: str) -> None:
    """Print the events of SCOPE/STREAM (UTF-8, one per line) until the stream ends or --timeout passes."""
    scope, stream = split_stream(name)
    try:
        count = asyncio.run(_read(controller, scope, stream, group_name, from_head, timeout))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    except AnabranchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"read {count} events from {name}", err=True)
