"""The official Pravega Python client (0.3.8) against ``anabranch standalone --auth``: with ``auth_enabled=True``
and the environment variables it works (tokens expiring every 2 s while it writes), a read-only user reads but
cannot create or write, and without credentials or with a wrong password it is refused.

A refused official client retries UNAUTHENTICATED for about 61 s before it gives up (its fixed retry policy),
so the two refusal scenarios run in the background, in parallel with the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from anabranch.testing.processes import Standalone
from tests.integration.auth.conftest import SCOPE, USERS, add_users

pytestmark = [pytest.mark.compat, pytest.mark.process]

SCENARIOS = Path(__file__).with_name("official_auth_scenarios.py")
DEADLINE = 120.0


def environment(user: str | None, password: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("pravega_client_auth")}
    if user is not None:
        env.update(pravega_client_auth_method="Basic", pravega_client_auth_username=user,
                   pravega_client_auth_password=password if password is not None else USERS[user][0])
    return env


def start(name: str, uri: str, env: dict[str, str], **args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(SCENARIOS), name, uri, json.dumps(args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str], deadline: float = DEADLINE) -> dict[str, object]:
    try:
        out, err = process.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"official client scenario still running after {deadline} s\n{err[-3000:]}")
    assert process.returncode == 0 and out.strip(), f"scenario failed:\n{err[-4000:]}"
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    root = tmp_path_factory.mktemp("official-auth")
    add_users(root / "users")
    standalone = Standalone(root / "data", None, None, "--auth", "--password-file", str(root / "users"),
                            "--token-ttl", "2", "--admin-port", "0")
    standalone.start()
    try:
        yield standalone
    finally:
        standalone.kill()


def test_official_client_with_and_without_credentials(server: Standalone) -> None:
    uri = server.controller_uri
    no_credentials = start("refused", uri, environment(None), scope="a", auth_enabled=False)
    wrong_password = start("refused", uri, environment("admin", "wrong"), scope="b", auth_enabled=True)
    stream = f"official-{uuid.uuid4().hex[:8]}"
    written = finish(start("write_read", uri, environment("admin"), scope=SCOPE, stream=stream, count=100,
                           seconds=5))
    assert written["created"] == [True, True]
    assert sorted(written["events"]) == sorted(f"e{i}" for i in range(100))  # type: ignore[call-overload]
    read_only = finish(start("read_only", uri, environment("reader"), scope=SCOPE, stream=stream, count=100))
    assert sorted(read_only["events"]) == sorted(f"e{i}" for i in range(100))  # type: ignore[call-overload]
    assert "PermissionDenied" in str(read_only["create"])
    assert read_only["write"] != "written"
    for process in (no_credentials, wrong_password):
        refused = finish(process)
        assert "created" not in refused and "Unauthenticated" in str(refused["error"]), refused
