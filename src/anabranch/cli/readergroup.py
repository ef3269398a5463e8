"""``anabranch readergroup create | list | describe | delete | reset``: reader groups from the command line.

A group's name is ``SCOPE/GROUP``. ``list`` finds the groups of a scope through the controller (each group
has its internal ``_RG<name>`` stream); ``describe`` reads the group's state: which reader holds which
segments, where each stands, and the lag (bytes always, events with ``--events``, which reads the unread
data to count them).
"""

from __future__ import annotations

from typing import Any

import click

from anabranch.cli.output import MissingError, emit, json_option
from anabranch.cli.user import controller_option, run, split_stream
from anabranch.client.reader_group import ReaderGroup, ReaderGroupConfig
from anabranch.client.stream_manager import StreamManager
from anabranch.errors import NotFoundError
from anabranch.model.names import READER_GROUP_STREAM_PREFIX, ScopedSegment
from anabranch.model.stream_cut import StreamCut


def split_group(value: str) -> tuple[str, str]:
    scope, sep, group = value.partition("/")
    if not sep or not scope or not group:
        raise click.BadParameter(f"{value!r}: expected SCOPE/GROUP")
    return scope, group


def segment_text(segment: ScopedSegment) -> str:
    """``stream:number`` — the segment number, not its 64-bit id."""
    return f"{segment.stream}:{segment.segment_id & 0xFFFFFFFF}"


@click.group()
def readergroup() -> None:
    """Create, list, describe (with lag), delete and reset reader groups."""


@readergroup.command("create")
@click.argument("name", metavar="SCOPE/GROUP")
@click.option("--stream", "streams", multiple=True, required=True, metavar="[SCOPE/]STREAM",
              help="A stream the group reads from its head (repeatable; the group's scope if none is given).")
@controller_option
def rg_create(name: str, streams: tuple[str, ...], controller: str) -> None:
    """Create reader group SCOPE/GROUP reading STREAMs from their heads (nothing changes if it exists)."""
    scope_name, group = split_group(name)
    cuts = tuple(StreamCut.unbounded(*(split_stream(s) if "/" in s else (scope_name, s))) for s in streams)
    run(controller, lambda m: m.create_reader_group(scope_name, group, ReaderGroupConfig(cuts)))
    click.echo(f"reader group {name} ready")


@readergroup.command("list")
@click.argument("scope_name", metavar="SCOPE")
@controller_option
@json_option
def rg_list(scope_name: str, controller: str, as_json: bool) -> None:
    """List the reader groups of SCOPE with the streams each reads."""

    async def rows(m: StreamManager) -> list[list[Any]]:
        streams = [s async for s in m.list_streams(scope_name, include_internal=True)]
        names = sorted(s[len(READER_GROUP_STREAM_PREFIX):] for s in streams if s.startswith(READER_GROUP_STREAM_PREFIX))
        found = []
        for group in names:
            try:
                config = (await m.get_reader_group(scope_name, group)).config
            except NotFoundError:
                continue
            found.append([group, [f"{c.scope}/{c.stream}" for c in config.starting_cuts]])
        return found

    result = run(controller, rows)
    emit(f"reader groups in {scope_name}", ["group", "streams"],
         [[g, " ".join(s)] for g, s in result] if not as_json else result, as_json)


async def describe_group(group: ReaderGroup, count_events: bool) -> dict[str, Any]:
    state = await group.state()
    lags = await group.reader_lags(count_events=count_events)
    total = await group.lag(count_events=count_events)
    return {
        "scope": group.scope, "group": group.name,
        "streams": [f"{c.scope}/{c.stream}" for c in group.config.starting_cuts],
        "readers": [{"reader": reader,
                     "segments": [{"segment": segment_text(s), "offset": offset}
                                  for s, offset in sorted(state.segments_of(reader).items(),
                                                          key=lambda item: item[0].segment_id)],
                     "lag_bytes": lags[reader].bytes,
                     "lag_events": lags[reader].events if count_events else None}
                    for reader in sorted(state.readers)],
        "unassigned": [{"segment": segment_text(s), "offset": offset} for s, offset in state.unassigned.items()],
        "lag_bytes": total.bytes, "lag_events": total.events if count_events else None,
        "checkpoints": [c.name for c in state.checkpoints],
    }


@readergroup.command("describe")
@click.argument("name", metavar="SCOPE/GROUP")
@controller_option
@click.option("--events", "count_events", is_flag=True, help="Also count unread events (reads the unread data).")
@json_option
def rg_describe(name: str, controller: str, count_events: bool, as_json: bool) -> None:
    """Show the readers of SCOPE/GROUP, the segments each holds, and the lag."""
    scope_name, group = split_group(name)

    async def describe(m: StreamManager) -> dict[str, Any]:
        return await describe_group(await m.get_reader_group(scope_name, group), count_events)

    d = run(controller, describe)
    if as_json:
        emit("", [], [], True, json_value=d)
        return
    events = f", {d['lag_events']} events" if count_events else ""
    rows = [[r["reader"], " ".join(f"{s['segment']}@{s['offset']}" for s in r["segments"]) or "-",
             r["lag_bytes"], "" if r["lag_events"] is None else r["lag_events"]] for r in d["readers"]]
    rows += [["(unassigned)", f"{s['segment']}@{s['offset']}", "", ""] for s in d["unassigned"]]
    click.echo(f"reader group {name} reads {', '.join(d['streams'])}; lag {d['lag_bytes']} bytes{events}")
    emit(f"readers of {name}", ["reader", "segments@offset", "lag_bytes", "lag_events"], rows, False)


@readergroup.command("delete")
@click.argument("name", metavar="SCOPE/GROUP")
@controller_option
def rg_delete(name: str, controller: str) -> None:
    """Delete reader group SCOPE/GROUP (its readers stop working)."""
    scope_name, group = split_group(name)
    if not run(controller, lambda m: m.delete_reader_group(scope_name, group)):
        raise MissingError(f"reader group {name} does not exist")
    click.echo(f"reader group {name} deleted")


@readergroup.command("reset")
@click.argument("name", metavar="SCOPE/GROUP")
@controller_option
@click.option("--checkpoint", help="Restart from this completed checkpoint (default: the group's starting cuts).")
def rg_reset(name: str, controller: str, checkpoint: str | None) -> None:
    """Restart SCOPE/GROUP from its starting cuts or a checkpoint; its readers must be created again."""
    scope_name, group = split_group(name)

    async def reset(m: StreamManager) -> None:
        found = await m.get_reader_group(scope_name, group)
        if checkpoint is None:
            await found.reset_to(found.config.starting_cuts)
            return
        for done in (await found.state()).checkpoints:
            if done.name == checkpoint:
                await found.reset_to(done)
                return
        raise MissingError(f"reader group {name} has no completed checkpoint {checkpoint!r}")

    run(controller, reset)
    click.echo(f"reader group {name} reset to {f'checkpoint {checkpoint}' if checkpoint else 'its starting cuts'}")
