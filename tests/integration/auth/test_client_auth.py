"""Anabranch's client against ``standalone --auth``: refusals, a read-only user, tokens expiring mid-stream,
the admin endpoint and the CLI's credentials."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from anabranch.client import StreamManager
from anabranch.client.config import basic_credentials
from anabranch.client.errors import AuthenticationError, AuthorizationError
from anabranch.client.reader_group import ReaderGroupConfig
from anabranch.testing.processes import HOST
from tests.integration.auth.conftest import SCOPE, TOKEN_TTL, AuthServer

pytestmark = pytest.mark.process
TIMEOUT = 60


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def ensure_scope(server: AuthServer) -> None:
    async with StreamManager(server.config("admin")) as admin:
        await admin.create_scope(SCOPE)


async def read_all(manager: StreamManager, stream: str, expected: int, deadline: float = 30) -> list[bytes]:
    group = await manager.create_reader_group(SCOPE, name("rg"), ReaderGroupConfig.for_streams(SCOPE, stream))
    reader = await group.create_reader("r1")
    events: list[bytes] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while len(events) < expected and loop.time() < end:
        for read in await reader.read_events(timeout=1.0):
            if read.event is not None:
                events.append(read.event)
    tail = await reader.read_events(timeout=0.5)  # nothing more may come (no duplicates)
    events.extend(r.event for r in tail if r.event is not None)
    await reader.close()
    return events


async def test_missing_or_wrong_credentials_are_refused(auth_server: AuthServer) -> None:
    for config in (auth_server.config(retry_attempts=1), auth_server.config("admin", "wrong", retry_attempts=1),
                   auth_server.config("ghost", "x", retry_attempts=1)):
        async with StreamManager(config) as manager:
            with pytest.raises(AuthenticationError, match="credentials refused"):
                await asyncio.wait_for(manager.create_scope(name("no")), TIMEOUT)
    async with StreamManager(auth_server.config("nobody")) as manager:
        with pytest.raises(AuthorizationError, match="READ_UPDATE on prn::/"):
            await asyncio.wait_for(manager.create_scope(name("no")), TIMEOUT)
        assert [s async for s in manager.list_scopes()] == []  # lists only what it may read


async def test_read_only_user_reads_but_cannot_write_or_create(auth_server: AuthServer) -> None:
    await ensure_scope(auth_server)
    stream = name("ro")
    async with StreamManager(auth_server.config("admin")) as admin:
        await admin.create_stream(SCOPE, stream)
        writer = admin.create_writer(SCOPE, stream)
        for i in range(10):
            await writer.write_event(f"e{i}".encode(), routing_key=f"k{i}")
        await writer.flush()
    async with StreamManager(auth_server.config("reader")) as reader:
        events = await asyncio.wait_for(read_all(reader, stream, 10), TIMEOUT)
        assert sorted(events) == sorted(f"e{i}".encode() for i in range(10))
        with pytest.raises(AuthorizationError, match="READ_UPDATE"):
            await reader.create_stream(SCOPE, name("no"))
        with pytest.raises(AuthorizationError, match="READ_UPDATE"):
            await reader.seal_stream(SCOPE, stream)
        writer = reader.create_writer(SCOPE, stream)
        with pytest.raises(AuthorizationError, match="does not grant READ_UPDATE"):
            ack = await writer.write_event(b"forbidden", routing_key="k")
            await asyncio.wait_for(ack, TIMEOUT)
        await writer.close(flush=False)
    async with StreamManager(auth_server.config("admin")) as admin:
        assert len(await read_all(admin, stream, 10)) == 10  # nothing was added


async def test_writer_keeps_writing_while_its_tokens_expire(auth_server: AuthServer) -> None:
    """Tokens live TOKEN_TTL s; the stream scales twice meanwhile, so new segments need SetupAppend with fresh
    tokens; every event arrives exactly once."""
    await ensure_scope(auth_server)
    stream = name("ttl")
    total = 0
    async with StreamManager(auth_server.config("admin")) as admin:
        await admin.create_stream(SCOPE, stream)
        writer = admin.create_writer(SCOPE, stream)
        loop = asyncio.get_running_loop()
        for round_ in range(3):
            end = loop.time() + TOKEN_TTL + 0.5
            while loop.time() < end:
                await writer.write_event(f"e{total}".encode(), routing_key=f"k{total % 7}")
                total += 1
                await asyncio.sleep(0.01)
            if round_ < 2:
                segments = await admin.get_current_segments(SCOPE, stream)
                first = segments[0]
                middle = (first.min_key + first.max_key) / 2
                await admin.scale_stream(SCOPE, stream, [first.segment_id],
                                         [(first.min_key, middle), (middle, first.max_key)])
        await writer.flush()
        await asyncio.sleep(TOKEN_TTL + 0.2)  # the reader starts with expired cached tokens
        events = await asyncio.wait_for(read_all(admin, stream, total), TIMEOUT)
    assert total > 100
    assert sorted(events) == sorted(f"e{i}".encode() for i in range(total))


def http_get(url: str, authorization: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_admin_endpoint_needs_the_same_credentials(auth_server: AuthServer) -> None:
    base = f"http://{HOST}:{auth_server.admin_port}"
    assert http_get(f"{base}/health") == 200
    assert http_get(f"{base}/scopes") == 401
    assert http_get(f"{base}/metrics", basic_credentials("admin", "wrong")) == 401
    assert http_get(f"{base}/scopes", basic_credentials("admin", "admin-pw")) == 200


def test_cli_takes_the_official_clients_variables(auth_server: AuthServer) -> None:
    command = [sys.executable, "-m", "anabranch", "scope", "create", name("cli"), "--controller",
               auth_server.server.controller_uri]
    env = {k: v for k, v in os.environ.items() if not k.startswith("pravega_client_auth")}
    refused = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert refused.returncode != 0 and "credentials" in refused.stderr + refused.stdout
    with_options = [*command[:3], "--username", "admin", "--password", "admin-pw", *command[3:]]
    with_options[-3] = name("cli")
    done = subprocess.run(with_options, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert done.returncode == 0, done.stderr
    env.update(pravega_client_auth_method="Basic", pravega_client_auth_username="admin",
               pravega_client_auth_password="admin-pw")
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert done.returncode == 0, done.stderr


def test_security_guide_example_runs(auth_server: AuthServer) -> None:
    doc = (Path(__file__).parents[3] / "docs" / "security.md").read_text()
    example = re.search(r"```python\n(.*?)```", doc, re.S)
    assert example is not None
    code = example.group(1).replace("tcp://127.0.0.1:9090", auth_server.server.controller_uri) \
        .replace('"s3cret"', '"admin-pw"').replace('"demo"', f'"{name("doc")}"')
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
