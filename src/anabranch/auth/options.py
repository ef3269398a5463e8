"""The auth options of the server commands: ``--auth --password-file F --token-signing-key-file K --token-ttl S``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from anabranch.auth.errors import AuthConfigError
from anabranch.auth.server import ServerAuth
from anabranch.auth.tokens import DEFAULT_TTL

F = TypeVar("F", bound=Callable[..., object])


def auth_options(command: F) -> F:
    """Adds ``auth``, ``password_file``, ``token_signing_key_file`` and ``token_ttl`` parameters."""
    command = click.option(
        "--token-ttl", type=click.FloatRange(min=1.0), default=DEFAULT_TTL, show_default=True,
        help="Seconds a delegation token the controller issues stays valid.")(command)
    command = click.option(
        "--token-signing-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="File with the key that signs delegation and system tokens; every controller and segment store of "
             "a deployment reads the same file (created with a random key if missing).")(command)
    command = click.option(
        "--password-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Users, password hashes and ACLs (see 'anabranch user add'); needed with --auth.")(command)
    return click.option(
        "--auth/--no-auth", default=False, show_default=True,
        help="Authenticate every controller call and check delegation tokens on every wire command.")(command)


def server_auth(auth: bool, password_file: Path | None, key_file: Path | None, token_ttl: float, *,
                need_key_file: bool = False, authenticates: bool = True, what: str = "this server") -> ServerAuth:
    """``ServerAuth`` from the options; bad settings stop the command with a usage error."""
    if need_key_file and key_file is None:
        raise click.UsageError(f"{what} needs --token-signing-key-file (the same file the controllers and segment "
                               f"stores of this deployment use)")
    try:
        return ServerAuth.create(enabled=auth, password_file=password_file, key_file=key_file, token_ttl=token_ttl,
                                 authenticates=authenticates)
    except AuthConfigError as exc:
        raise click.UsageError(str(exc)) from exc
