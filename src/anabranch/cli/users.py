"""``anabranch user add|remove|list``: manage the users of a password file (for servers started with --auth).

Not to be confused with ``cli/user.py``, which holds the scope and stream commands of a user of the servers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

from anabranch.auth.errors import AuthConfigError
from anabranch.auth.passwords import PasswordFile
from anabranch.client.config import AUTH_METHOD_ENV, AUTH_PASSWORD_ENV, AUTH_USERNAME_ENV

F = TypeVar("F", bound=Callable[..., object])

_password_file = click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
                              help="The password file the servers read (--auth --password-file).")


@click.group()
def user() -> None:
    """Add, remove and list users of a password file (servers read it with --auth --password-file)."""


@user.command("add")
@click.argument("name")
@_password_file
@click.option("--password", default=None, help="The password (prompted for, hidden, when absent).")
@click.option("--acl", default="", show_default=False,
              help="Access list: ';'-separated RESOURCE,PERMISSION entries, e.g. "
                   "'prn::/scope:demo/*,READ_UPDATE;prn::/,READ' (PERMISSION: READ or READ_UPDATE; "
                   "'prn::*,READ_UPDATE' is everything).")
def add(name: str, password_file: Path, password: str | None, acl: str) -> None:
    """Add user NAME (or replace its password and ACL)."""
    if password is None:
        password = click.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.UsageError("the password must not be empty")
    try:
        PasswordFile(password_file).add(name, password, acl)
    except AuthConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"user {name} saved in {password_file}")


@user.command("remove")
@click.argument("name")
@_password_file
def remove(name: str, password_file: Path) -> None:
    """Remove user NAME."""
    try:
        PasswordFile(password_file).remove(name)
    except AuthConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"user {name} removed from {password_file}")


@user.command("list")
@_password_file
def list_users(password_file: Path) -> None:
    """List the users and their ACLs."""
    try:
        users = PasswordFile(password_file).load()
    except AuthConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    table = Table("user", "ACL")
    for entry in sorted(users.values(), key=lambda u: u.name):
        table.add_row(entry.name, str(entry.acl) or "(none)")
    Console(width=200).print(table)


def credentials_options(command: F) -> F:
    """``--username``/``--password`` of the ``anabranch`` group: the credentials every client command sends."""
    command = click.option("--password", default=None, envvar=AUTH_PASSWORD_ENV, show_envvar=True,
                           help="Password of --username (prompted for when absent).")(command)
    return click.option("--username", default=None, envvar=AUTH_USERNAME_ENV, show_envvar=True,
                        help="User for servers started with --auth (Basic credentials).")(command)


def apply_credentials(username: str | None, password: str | None) -> None:
    """Put the credentials where every ``ClientConfig`` of this process finds them: the official client's
    environment variables."""
    if username is None:
        return
    if password is None:
        password = click.prompt(f"password for {username}", hide_input=True, err=True)
    os.environ.update({AUTH_METHOD_ENV: "Basic", AUTH_USERNAME_ENV: username, AUTH_PASSWORD_ENV: password})
