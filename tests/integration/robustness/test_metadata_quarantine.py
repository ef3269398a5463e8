"""Issue 10, case 9: 48 bytes appended over the wire into a controller metadata table, then a restart. The table's
index rebuild quarantines them (logged once), the rest of the table serves, and the controller starts and keeps
every scope. The append needs the system token (``_system`` is closed to user tokens); an operator holding the
signing key, or a server from before that rule, could do it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from robustness_helpers import connect, probe_every_container

from anabranch.auth.tokens import TokenSigner, load_or_create_key
from anabranch.client import StreamManager
from anabranch.client.connection import next_request_id
from anabranch.model.names import SYSTEM_SCOPE, table_segment_name
from anabranch.protocol.commands import (
    AppendBlockEnd,
    AppendSetup,
    DataAppended,
    Reply,
    SetupAppend,
)
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process
SCOPES_TABLE = table_segment_name(SYSTEM_SCOPE, "scopes")


async def scopes(server: Standalone) -> list[str]:
    async with StreamManager(server.controller_uri) as manager:
        return sorted([name async for name in manager.list_scopes()])


async def test_garbage_in_a_metadata_table_is_quarantined_and_the_controller_starts(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.key"
    server = Standalone(tmp_path / "data", None, None, "--token-signing-key-file", str(key_file))
    server.start()
    try:
        async with StreamManager(server.controller_uri) as manager:
            for scope in ("alpha", "beta"):
                assert await manager.create_scope(scope)
            assert await manager.create_stream("alpha", "s")
        token = TokenSigner(load_or_create_key(key_file)).system_token()
        conn = await connect(server.segmentstore_port)
        try:
            writer = uuid.uuid4()
            setup = await conn.request(SetupAppend(next_request_id(), writer, SCOPES_TABLE, token))
            assert isinstance(setup, AppendSetup), setup
            acked: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            conn.add_listener(writer, lambda reply: None if acked.done() else acked.set_result(reply))
            conn.send(AppendBlockEnd(writer, 48, bytes(range(48)), 1, 1, next_request_id()))
            assert isinstance(await asyncio.wait_for(acked, 30), DataAppended)
        finally:
            await conn.close()
        server.restart(timeout=60)  # before the fix the controller never opened its port again
        assert await scopes(server) == ["alpha", "beta"]
        async with StreamManager(server.controller_uri) as manager:
            assert await manager.create_scope("gamma")
            assert [name async for name in manager.list_streams("alpha")] == ["s"]
        assert await scopes(server) == ["alpha", "beta", "gamma"]
        await probe_every_container(server.segmentstore_port, "case9")
        log = server.log_text()
        assert log.count(f"of table segment {SCOPES_TABLE!r}") == 1, "quarantined once"
        assert "quarantined 48 bytes" in log
    finally:
        server.kill()
