"""User commands: ``anabranch scope ...``, ``anabranch stream ...`` and ``anabranch write SCOPE/STREAM``.

Each command opens a ``StreamManager`` on ``--controller`` (or ``$ANABRANCH_CONTROLLER``), runs one asyncio
operation and exits; client errors become one-line messages (exit code 1, also for anything that does not
exist), never tracebacks. Lists and descriptions print JSON with ``--json`` and plain lines into a pipe
(``cli.output``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import click

from anabranch.cli.describe import admin_url_for, fetch_description, grpc_description, render
from anabranch.cli.output import MissingError, emit, json_option
from anabranch.client.config import ClientConfig, RetentionPolicy, ScalingPolicy, StreamConfiguration
from anabranch.client.errors import ScopeNotEmptyError
from anabranch.client.event_writer import EventStreamWriter
from anabranch.client.segment_writer import ClientContext
from anabranch.client.stream_manager import StreamManager
from anabranch.errors import AnabranchError, NotFoundError
from anabranch.model.names import READER_GROUP_STREAM_PREFIX, qualified_segment_name
from anabranch.model.stream_cut import StreamCut
from anabranch.protocol import commands as wire

T = TypeVar("T")
controller_option = click.option("--controller", default="tcp://127.0.0.1:9090", show_default=True,
                                  envvar="ANABRANCH_CONTROLLER", show_envvar=True,
                                  help="Controller URI (tcp://host:port or tls://host:port).")


def run(controller: str, action: Callable[[StreamManager], Awaitable[T]]) -> T:
    """Run ``action`` with a manager on ``controller``; client errors become click errors."""

    async def main() -> T:
        async with StreamManager(ClientConfig(controller, retry_attempts=3)) as manager:
            return await action(manager)

    try:
        return asyncio.run(main())
    except NotFoundError as exc:
        raise MissingError(str(exc)) from exc
    except AnabranchError as exc:
        raise click.ClickException(str(exc)) from exc


def split_stream(value: str) -> tuple[str, str]:
    scope, sep, stream = value.partition("/")
    if not sep or not scope or not stream:
        raise click.BadParameter(f"{value!r}: expected SCOPE/STREAM")
    return scope, stream


async def scope_contents(m: StreamManager, scope_name: str) -> dict[str, list[str]]:
    """What keeps a scope from being deleted: its streams, reader groups and key-value tables."""
    names = [s async for s in m.list_streams(scope_name, include_internal=True)]
    return {
        "streams": sorted(n for n in names if not n.startswith("_")),
        "reader groups": sorted(n[len(READER_GROUP_STREAM_PREFIX):] for n in names
                                if n.startswith(READER_GROUP_STREAM_PREFIX)),
        "key-value tables": sorted([t async for t in m.list_key_value_tables(scope_name)]),
    }


@click.group()
def scope() -> None:
    """Create, delete and list scopes."""


@scope.command("create")
@click.argument("name")
@controller_option
def scope_create(name: str, controller: str) -> None:
    """Create scope NAME."""
    created = run(controller, lambda m: m.create_scope(name))
    click.echo(f"scope {name} " + ("created" if created else "already exists"))


@scope.command("delete")
@click.argument("name")
@controller_option
def scope_delete(name: str, controller: str) -> None:
    """Delete scope NAME (it must be empty: the error names what it still holds)."""

    async def delete(m: StreamManager) -> bool:
        try:
            return await m.delete_scope(name)
        except ScopeNotEmptyError:
            contents = await scope_contents(m, name)
            held = "; ".join(f"{kind}: {', '.join(items)}" for kind, items in contents.items() if items)
            raise click.ClickException(f"scope {name} is not empty ({held or 'internal streams'}); "
                                       "delete those first") from None

    if not run(controller, delete):
        raise MissingError(f"scope {name} does not exist")
    click.echo(f"scope {name} deleted")


@scope.command("list")
@controller_option
@click.option("--all", "show_all", is_flag=True, help="Include internal scopes (names starting with '_').")
@json_option
def scope_list(controller: str, show_all: bool, as_json: bool) -> None:
    """List scopes."""

    async def names(m: StreamManager) -> list[str]:
        return [s async for s in m.list_scopes(include_internal=show_all)]

    found = sorted(run(controller, names))
    emit("scopes", ["scope"], [[n] for n in found], as_json, json_value=found)


@click.group()
def stream() -> None:
    """Create, list, describe, seal, truncate and delete streams."""


@stream.command("create")
@click.argument("name", metavar="SCOPE/STREAM")
@controller_option
@click.option("--segments", default=1, show_default=True, help="Initial (minimum) number of segments.")
@click.option("--scaling", type=click.Choice(["fixed", "events", "kbytes"]), default="fixed", show_default=True,
              help="Fixed segment count, or auto-scaling by events/s or KiB/s per segment.")
@click.option("--target-rate", default=0, help="Auto-scaling target per segment (events/s or KiB/s).")
@click.option("--scale-factor", default=2, show_default=True, help="Segments a hot segment splits into.")
@click.option("--retention-time", type=int, help="Keep at least this many milliseconds of data.")
@click.option("--retention-size", type=int, help="Keep at least this many bytes of data.")
@click.option("--tag", "tags", multiple=True, help="A tag for the stream (repeatable).")
def stream_create(name: str, controller: str, segments: int, scaling: str, target_rate: int, scale_factor: int,
                  retention_time: int | None, retention_size: int | None, tags: tuple[str, ...]) -> None:
    """Create stream SCOPE/STREAM."""
    scope_name, stream_name = split_stream(name)
    try:
        policy = {
            "fixed": lambda: ScalingPolicy.fixed(segments),
            "events": lambda: ScalingPolicy.by_event_rate(target_rate, scale_factor, segments),
            "kbytes": lambda: ScalingPolicy.by_data_rate(target_rate, scale_factor, segments),
        }[scaling]()
        retention = (RetentionPolicy.by_time(retention_time) if retention_time is not None else
                     RetentionPolicy.by_size(retention_size) if retention_size is not None else RetentionPolicy.none())
        config = StreamConfiguration(policy, retention, tags)
    except AnabranchError as exc:
        raise click.BadParameter(str(exc)) from exc
    ctx = click.get_current_context()
    given = [f"--{p.replace('_', '-')}" for p in ("segments", "scaling", "target_rate", "scale_factor",
                                                   "retention_time", "retention_size", "tags")
             if ctx.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT]

    async def create(m: StreamManager) -> tuple[bool, bool]:
        if await m.create_stream(scope_name, stream_name, config):
            return True, True
        return False, await m.get_stream_configuration(scope_name, stream_name) == config

    created, same = run(controller, create)
    if created:
        click.echo(f"stream {name} created")
    elif not given or same:
        click.echo(f"stream {name} already exists" + (" with this configuration" if given else ""))
    else:
        click.echo(f"stream {name} already exists with another configuration; ignored {', '.join(given)}")


@stream.command("list")
@click.argument("scope_name", metavar="SCOPE")
@controller_option
@click.option("--tag", help="Only streams with this tag.")
@click.option("--all", "show_all", is_flag=True, help="Include internal streams (names starting with '_').")
@json_option
def stream_list(scope_name: str, controller: str, tag: str | None, show_all: bool, as_json: bool) -> None:
    """List the streams of SCOPE with their segment counts."""

    async def rows(m: StreamManager) -> list[tuple[str, int]]:
        names = [s async for s in m.list_streams(scope_name, tag=tag, include_internal=show_all)]
        counts = [len(await m.get_current_segments(scope_name, n)) for n in names]
        return sorted(zip(names, counts, strict=True))

    emit(f"streams in {scope_name}", ["stream", "active_segments"], run(controller, rows), as_json)


@stream.command("seal")
@click.argument("name", metavar="SCOPE/STREAM")
@controller_option
def stream_seal(name: str, controller: str) -> None:
    """Seal SCOPE/STREAM: no more writes."""
    scope_name, stream_name = split_stream(name)
    run(controller, lambda m: m.seal_stream(scope_name, stream_name))
    click.echo(f"stream {name} sealed")


@stream.command("delete")
@click.argument("name", metavar="SCOPE/STREAM")
@controller_option
@click.option("--seal", "seal_first", is_flag=True, help="Seal the stream first.")
def stream_delete(name: str, controller: str, seal_first: bool) -> None:
    """Delete SCOPE/STREAM (it must be sealed)."""
    scope_name, stream_name = split_stream(name)

    async def delete(m: StreamManager) -> bool:
        if seal_first:
            await m.seal_stream(scope_name, stream_name)
        return await m.delete_stream(scope_name, stream_name)

    if not run(controller, delete):
        raise MissingError(f"stream {name} does not exist")
    click.echo(f"stream {name} deleted")


def _info_request(segment: str, request_id: int) -> wire.GetStreamSegmentInfo:
    return wire.GetStreamSegmentInfo(request_id, segment, "")


async def tail_cut(context: ClientContext, manager: StreamManager, scope_name: str, stream_name: str) -> StreamCut:
    positions = {}
    for segment in await manager.get_current_segments(scope_name, stream_name):
        qualified = qualified_segment_name(scope_name, stream_name, segment.segment_id)
        reply = await manager.router.request(qualified, functools.partial(_info_request, qualified))
        if not isinstance(reply, wire.StreamSegmentInfo):
            raise click.ClickException(f"cannot read the length of {qualified}: {type(reply).__name__}")
        positions[segment.segment_id] = reply.write_offset
    return StreamCut(scope_name, stream_name, positions)


@stream.command("truncate")
@click.argument("name", metavar="SCOPE/STREAM")
@controller_option
@click.option("--at", "positions", multiple=True, metavar="SEGMENT_ID=OFFSET",
              help="One position of the stream cut (repeat for each segment).")
@click.option("--to-tail", is_flag=True, help="Truncate everything written so far.")
def stream_truncate(name: str, controller: str, positions: tuple[str, ...], to_tail: bool) -> None:
    """Drop the data of SCOPE/STREAM before a stream cut."""
    scope_name, stream_name = split_stream(name)
    if to_tail == bool(positions):
        raise click.UsageError("give either --to-tail or one --at SEGMENT_ID=OFFSET per segment")
    try:
        cut_map = {int(k): int(v) for k, v in (p.split("=", 1) for p in positions)}
    except ValueError as exc:
        raise click.BadParameter("--at expects SEGMENT_ID=OFFSET with integers") from exc

    async def truncate(m: StreamManager) -> StreamCut:
        cut = (await tail_cut(m.context, m, scope_name, stream_name) if to_tail
               else StreamCut(scope_name, stream_name, cut_map))
        await m.truncate_stream(cut)
        return cut

    cut = run(controller, truncate)
    click.echo(f"stream {name} truncated at {dict(cut.positions)}")


@stream.command("describe")
@click.argument("name", metavar="SCOPE/STREAM")
@controller_option
@click.option("--admin", metavar="URL", envvar="ANABRANCH_ADMIN", show_envvar=True,
              help="Ask this admin endpoint (default: the controller's host on port 9091 when it answers), which "
                   "also knows epoch times and reasons and the retention records.")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def stream_describe(name: str, controller: str, admin: str | None, as_json: bool) -> None:
    """Show the segments, epoch history, head, tail and retention state of SCOPE/STREAM."""
    scope_name, stream_name = split_stream(name)
    admin = admin or admin_url_for(controller)
    if admin is not None:
        description = fetch_description(admin, scope_name, stream_name)
    else:
        description = run(controller, lambda m: grpc_description(m, scope_name, stream_name))
    if as_json:
        click.echo(json.dumps(description, indent=1))
    else:
        render(description)


@click.command()
@click.argument("name", metavar="SCOPE/STREAM")
@click.argument("messages", nargs=-1)
@controller_option
@click.option("--key", help="Routing key for every event (events with one key keep their order).")
def write(name: str, messages: tuple[str, ...], controller: str, key: str | None) -> None:
    """Write MESSAGES (or each line of stdin) as events to SCOPE/STREAM."""
    scope_name, stream_name = split_stream(name)
    lines: Iterable[str] = messages or (line.rstrip("\n") for line in sys.stdin)

    async def send(m: StreamManager) -> int:
        count = 0
        writer: EventStreamWriter[str] = m.create_writer(scope_name, stream_name)
        for line in lines:
            await writer.write_event(line, routing_key=key)
            count += 1
        await writer.flush()
        return count

    click.echo(f"wrote {run(controller, send)} events to {name}", err=True)
