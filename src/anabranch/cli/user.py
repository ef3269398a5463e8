"""Placeholder: filled in by its owner."""

import click


@click.command()
def scope() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")


@click.command()
def stream() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")


@click.command()
def write() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")

