"""Placeholder: filled in by its owner."""

import click


@click.command()
def read() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
