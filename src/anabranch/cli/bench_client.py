"""Placeholder: filled in by its owner."""

import click


@click.command()
def bench_write() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")


@click.command()
def bench_read() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")

