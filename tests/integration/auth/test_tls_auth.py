"""TLS and authentication together: credentials travel inside TLS, tokens are checked on the TLS wire port."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from anabranch.client import StreamManager
from anabranch.client.config import ClientConfig
from anabranch.client.errors import AuthenticationError
from anabranch.client.reader_group import ReaderGroupConfig
from anabranch.testing.processes import Standalone
from tests.integration.auth.conftest import USERS, add_users
from tests.unit.tls.certs import make_pki

pytestmark = pytest.mark.process


async def test_tls_with_auth(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    add_users(tmp_path / "users")
    server = Standalone(tmp_path / "data", None, None, "--host", "localhost", "--tls-cert", str(pki.server_cert),
                        "--tls-key", str(pki.server_key), "--auth", "--password-file", str(tmp_path / "users"),
                        "--admin-port", "0")
    uri = f"tls://localhost:{server.controller_port}"
    with server:
        refused = ClientConfig(uri, trust_store=str(pki.ca_cert), retry_attempts=1)
        async with StreamManager(refused) as manager:
            with pytest.raises(AuthenticationError):
                await asyncio.wait_for(manager.create_scope("nope"), 30)
        config = ClientConfig(uri, trust_store=str(pki.ca_cert), username="admin", password=USERS["admin"][0])
        scope = f"tls-{uuid.uuid4().hex[:8]}"
        async with StreamManager(config) as manager:
            assert await manager.create_scope(scope)
            await manager.create_stream(scope, "s")
            writer = manager.create_writer(scope, "s")
            for i in range(20):
                await writer.write_event(f"e{i}".encode(), routing_key=f"k{i % 3}")
            await writer.flush()
            group = await manager.create_reader_group(scope, "g", ReaderGroupConfig.for_streams(scope, "s"))
            reader = await group.create_reader("r1")
            seen: list[bytes] = []

            async def read_all() -> None:
                while len(seen) < 20:
                    read = await reader.read_next_event(timeout=1)
                    if read.event is not None:
                        seen.append(read.event)

            await asyncio.wait_for(read_all(), 30)
            await reader.close()
        assert sorted(seen) == sorted(f"e{i}".encode() for i in range(20))
