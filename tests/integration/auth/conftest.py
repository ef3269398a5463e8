"""A real ``anabranch standalone --auth`` with users made by ``anabranch user add``, one per test module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from anabranch.cli.main import cli
from anabranch.client.config import ClientConfig
from anabranch.testing.processes import Standalone, free_port

SCOPE = "sec"
TOKEN_TTL = 2
USERS = {
    "admin": ("admin-pw", "prn::*,READ_UPDATE"),
    "reader": ("reader-pw", f"prn::/scope:{SCOPE},READ;prn::/scope:{SCOPE}/*,READ"),
    "nobody": ("nobody-pw", ""),
}


@dataclass
class AuthServer:
    server: Standalone
    key: bytes
    password_file: Path
    admin_port: int

    def config(self, user: str | None = None, password: str | None = None, **options: object) -> ClientConfig:
        if user is not None and password is None:
            password = USERS[user][0]
        return ClientConfig(self.server.controller_uri, username=user, password=password,
                            **options)  # type: ignore[arg-type]


def add_users(password_file: Path) -> None:
    runner = CliRunner()
    for name, (password, acl) in USERS.items():
        result = runner.invoke(cli, ["user", "add", name, "--password-file", str(password_file),
                                     "--password", password, "--acl", acl])
        assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("auth")
    password_file, key_file = root / "users", root / "signing.key"
    add_users(password_file)
    key = b"integration-signing-key-0123456789"
    key_file.write_bytes(key)
    admin_port = free_port()
    server = Standalone(root / "data", None, None, "--auth", "--password-file", str(password_file),
                        "--token-signing-key-file", str(key_file), "--token-ttl", str(TOKEN_TTL),
                        "--admin-port", str(admin_port))
    server.start()
    try:
        yield AuthServer(server, key, password_file, admin_port)
    finally:
        server.kill()
