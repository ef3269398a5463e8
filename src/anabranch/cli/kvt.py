"""``anabranch kvt create | list | get | put | delete``: key-value tables from the command line.

Keys of a table have a fixed length (``--key-length`` bytes of primary key, optionally ``--secondary-length``
bytes of secondary key). A key is given as text (UTF-8) or, with ``--hex``, as hexadecimal; text shorter than
the key length can be padded with ``--pad`` (NUL bytes on the right). Values are text (UTF-8) or hex.
``get`` without a key lists the entries (``--limit``).
"""

from __future__ import annotations

from typing import Any

import click

from anabranch.cli.output import MissingError, emit, json_option
from anabranch.cli.user import controller_option, run
from anabranch.client.controller_client import KeyValueTableConfiguration
from anabranch.client.kv_table import KeyValueTable, TableEntry, TableKey
from anabranch.client.stream_manager import StreamManager


def split_table(value: str) -> tuple[str, str]:
    scope, sep, table = value.partition("/")
    if not sep or not scope or not table:
        raise click.BadParameter(f"{value!r}: expected SCOPE/TABLE")
    return scope, table


def encode(text: str, as_hex: bool, what: str) -> bytes:
    if not as_hex:
        return text.encode()
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise click.BadParameter(f"{what} {text!r} is not hexadecimal") from None


def decode(data: bytes, as_hex: bool) -> str:
    if as_hex:
        return data.hex()
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "0x" + data.hex()


def table_key(table: KeyValueTable, primary: bytes, secondary: bytes, pad: bool) -> TableKey:
    config = table.config
    for part, length, what in ((primary, config.primary_key_length, "primary key"),
                               (secondary, config.secondary_key_length, "secondary key")):
        if len(part) > length or (len(part) < length and not pad):
            raise click.ClickException(f"{table.scope}/{table.name} has {length}-byte {what}s; {part!r} has "
                                       f"{len(part)} bytes (use --pad to fill shorter keys with NUL bytes)")
    return TableKey(primary.ljust(config.primary_key_length, b"\0"),
                    secondary.ljust(config.secondary_key_length, b"\0"))


def entry_json(entry: TableEntry, as_hex: bool) -> dict[str, Any]:
    return {"key": decode(entry.key.primary.rstrip(b"\0"), as_hex),
            "secondary": decode(entry.key.secondary.rstrip(b"\0"), as_hex),
            "value": decode(entry.value, as_hex), "version": entry.version}


key_options = [
    click.option("--secondary", default="", help="Secondary key (tables created with --secondary-length)."),
    click.option("--hex", "as_hex", is_flag=True, help="Keys and values are hexadecimal."),
    click.option("--pad", is_flag=True, help="Pad shorter keys with NUL bytes to the table's key length."),
]


def with_key_options(function: Any) -> Any:
    for option in reversed(key_options):
        function = option(function)
    return function


@click.group()
def kvt() -> None:
    """Create, list, read, write and delete key-value tables."""


@kvt.command("create")
@click.argument("name", metavar="SCOPE/TABLE")
@controller_option
@click.option("--partitions", type=click.IntRange(1, 1024), default=1, show_default=True)
@click.option("--key-length", type=click.IntRange(1, 8192), default=8, show_default=True,
              help="Bytes of every primary key.")
@click.option("--secondary-length", type=click.IntRange(0, 8192), default=0, show_default=True,
              help="Bytes of every secondary key (0: none).")
def kvt_create(name: str, controller: str, partitions: int, key_length: int, secondary_length: int) -> None:
    """Create key-value table SCOPE/TABLE."""
    scope_name, table = split_table(name)
    config = KeyValueTableConfiguration(partitions, key_length, secondary_length)
    created = run(controller, lambda m: m.create_key_value_table(scope_name, table, config))
    click.echo(f"key-value table {name} " + ("created" if created else "already exists"))


@kvt.command("list")
@click.argument("scope_name", metavar="SCOPE")
@controller_option
@json_option
def kvt_list(scope_name: str, controller: str, as_json: bool) -> None:
    """List the key-value tables of SCOPE."""

    async def names(m: StreamManager) -> list[str]:
        return sorted([t async for t in m.list_key_value_tables(scope_name)])

    found = run(controller, names)
    emit(f"key-value tables in {scope_name}", ["table"], [[n] for n in found], as_json, json_value=found)


@kvt.command("get")
@click.argument("name", metavar="SCOPE/TABLE")
@click.argument("key", required=False)
@controller_option
@with_key_options
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True,
              help="Without KEY: list at most this many entries.")
@json_option
def kvt_get(name: str, key: str | None, controller: str, secondary: str, as_hex: bool, pad: bool, limit: int,
            as_json: bool) -> None:
    """Print the value of KEY in SCOPE/TABLE (exit code 1 if absent), or list entries without KEY."""
    scope_name, table_name = split_table(name)

    async def read(m: StreamManager) -> list[TableEntry]:
        table = await m.get_key_value_table(scope_name, table_name)
        if key is not None:
            found = await table.get(table_key(table, encode(key, as_hex, "key"),
                                              encode(secondary, as_hex, "secondary key"), pad))
            if found is None:
                raise MissingError(f"key {key!r} is not in {name}")
            return [found]
        entries: list[TableEntry] = []
        async for entry in table.iterate_entries():
            entries.append(entry)
            if len(entries) >= limit:
                break
        return entries

    entries = [entry_json(e, as_hex) for e in run(controller, read)]
    if key is not None and not as_json:
        click.echo(entries[0]["value"])
        return
    emit(f"entries of {name}", ["key", "secondary", "value", "version"],
         [[e["key"], e["secondary"], e["value"], e["version"]] for e in entries], as_json,
         json_value=entries[0] if key is not None else entries)


@kvt.command("put")
@click.argument("name", metavar="SCOPE/TABLE")
@click.argument("key")
@click.argument("value")
@controller_option
@with_key_options
def kvt_put(name: str, key: str, value: str, controller: str, secondary: str, as_hex: bool, pad: bool) -> None:
    """Set KEY to VALUE in SCOPE/TABLE; prints the new version."""
    scope_name, table_name = split_table(name)

    async def put(m: StreamManager) -> int:
        table = await m.get_key_value_table(scope_name, table_name)
        return await table.put(table_key(table, encode(key, as_hex, "key"),
                                         encode(secondary, as_hex, "secondary key"), pad),
                               encode(value, as_hex, "value"))

    click.echo(f"{key} = {value} (version {run(controller, put)})")


@kvt.command("delete")
@click.argument("name", metavar="SCOPE/TABLE")
@click.argument("key", required=False)
@controller_option
@with_key_options
def kvt_delete(name: str, key: str | None, controller: str, secondary: str, as_hex: bool, pad: bool) -> None:
    """Delete KEY from SCOPE/TABLE, or the whole table when no KEY is given."""
    scope_name, table_name = split_table(name)

    async def delete(m: StreamManager) -> bool:
        if key is None:
            return await m.delete_key_value_table(scope_name, table_name)
        table = await m.get_key_value_table(scope_name, table_name)
        k = table_key(table, encode(key, as_hex, "key"), encode(secondary, as_hex, "secondary key"), pad)
        if await table.get(k) is None:
            return False
        await table.remove(k)
        return True

    if not run(controller, delete):
        raise MissingError(f"key {key!r} is not in {name}" if key is not None else
                           f"key-value table {name} does not exist")
    click.echo(f"deleted {f'key {key} from ' if key is not None else 'key-value table '}{name}")
