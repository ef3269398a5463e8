"""Placeholder: filled in by its owner."""

import click


@click.command()
def bench_append() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")

