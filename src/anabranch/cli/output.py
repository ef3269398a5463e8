"""How the user commands print and exit, the same way everywhere.

- ``emit``: a list or a description as JSON with ``--json``; as a table on a terminal; as plain
  tab-separated lines (no header, no decoration) when stdout is a pipe or a file, so ``cut``/``awk`` work.
- Exit codes: 0 success; 1 an error, including a thing that does not exist (``MissingError``); 2 a usage error
  (click's); 130 interrupted by Ctrl-C (``AnabranchGroup``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

EXIT_INTERRUPTED = 130

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")


class MissingError(click.ClickException):
    """A scope, stream, reader group, table or key that does not exist: one line on stderr, exit code 1."""

    exit_code = 1


class AnabranchGroup(click.Group):
    """The root command group: Ctrl-C ends any command with exit code 130 and one line, not click's 'Aborted!'."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


def is_terminal() -> bool:
    return sys.stdout.isatty()


def emit(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], as_json: bool,
         json_value: Any = None) -> None:
    """Print rows: JSON (``json_value``, else a list of objects keyed by ``columns``), a table, or plain lines."""
    rows = [list(r) for r in rows]
    if as_json:
        value = json_value if json_value is not None else [dict(zip(columns, r, strict=True)) for r in rows]
        click.echo(json.dumps(value, indent=1))
        return
    if not is_terminal():
        for row in rows:
            click.echo("\t".join(str(cell) for cell in row))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console().print(table)
