"""The segment store's token checks on the raw wire, against ``standalone --auth`` and a standalone without auth:
missing, forged, expired, wrong-resource and read-only tokens are refused for appends, reads, table operations,
seal, truncate and delete; ``_system`` is untouchable by users either way."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator

import grpc
import jwt
import pytest

from anabranch.auth.permissions import Permission, of_stream
from anabranch.auth.tokens import TokenSigner
from anabranch.client import StreamManager
from anabranch.client.connection import RawConnection, next_request_id
from anabranch.client.controller_client import ControllerClient
from anabranch.client.errors import AuthorizationError
from anabranch.protocol import commands as c
from anabranch.testing.processes import HOST, Standalone
from tests.integration.auth.conftest import SCOPE, AuthServer

pytestmark = pytest.mark.process
TIMEOUT = 30.0
SYSTEM_TABLE = "_system/_tables/scopes"

Make = Callable[[str, str], c.Request]
"""(segment, token) → request."""

COMMANDS: dict[str, tuple[Make, bool]] = {
    "SetupAppend": (lambda s, t: c.SetupAppend(next_request_id(), uuid.uuid4(), s, t), True),
    "ReadSegment": (lambda s, t: c.ReadSegment(s, 0, 100, t, next_request_id()), False),
    "GetStreamSegmentInfo": (lambda s, t: c.GetStreamSegmentInfo(next_request_id(), s, t), False),
    "SealSegment": (lambda s, t: c.SealSegment(next_request_id(), s, t), True),
    "TruncateSegment": (lambda s, t: c.TruncateSegment(next_request_id(), s, 0, t), True),
    "DeleteSegment": (lambda s, t: c.DeleteSegment(next_request_id(), s, t), True),
}
TABLE_COMMANDS: dict[str, tuple[Make, bool]] = {
    "CreateTableSegment": (lambda s, t: c.CreateTableSegment(next_request_id(), s, t), True),
    "UpdateTableEntries": (lambda s, t: c.UpdateTableEntries(
        next_request_id(), s, t, (c.TableEntry(c.TableKey(b"k"), b"v"),)), True),
    "RemoveTableKeys": (lambda s, t: c.RemoveTableKeys(next_request_id(), s, t, (c.TableKey(b"k"),)), True),
    "ReadTable": (lambda s, t: c.ReadTable(next_request_id(), s, t, (c.TableKey(b"k"),)), False),
    "ReadTableEntries": (lambda s, t: c.ReadTableEntries(next_request_id(), s, t, 10, c.TableIteratorArgs()),
                         False),
    "DeleteTableSegment": (lambda s, t: c.DeleteTableSegment(next_request_id(), s, False, t), True),
}


async def send(port: int, request: c.Request) -> c.Reply:
    connection = await RawConnection.connect(HOST, port, timeout=TIMEOUT)
    try:
        return await connection.request(request, timeout=TIMEOUT)
    finally:
        await connection.close()


def assert_refused(reply: c.Reply, code: int, what: str) -> None:
    assert isinstance(reply, c.AuthTokenCheckFailed), f"{what}: answered {reply!r}"
    assert reply.error_code == code, f"{what}: code {reply.error_code}, {reply.server_stack_trace}"


@pytest.fixture(scope="module")
def streams(auth_server: AuthServer) -> Iterator[tuple[str, str]]:
    stream, table_stream = f"wire-{uuid.uuid4().hex[:6]}", f"state-{uuid.uuid4().hex[:6]}"

    async def create() -> None:
        async with StreamManager(auth_server.config("admin")) as admin:
            await admin.create_scope(SCOPE)
            await admin.create_stream(SCOPE, stream)
            writer = admin.create_writer(SCOPE, stream)
            await (await writer.write_event(b"data so reads at offset 0 answer at once"))
            await writer.close()

    asyncio.run(create())
    yield stream, table_stream


async def test_bad_tokens_are_refused_for_every_kind_of_command(auth_server: AuthServer,
                                                                streams: tuple[str, str]) -> None:
    stream, table_stream = streams
    port = auth_server.server.segmentstore_port
    segment, table = f"{SCOPE}/{stream}/0.#epoch.0", f"{SCOPE}/{table_stream}/0.#epoch.0"
    real = TokenSigner(auth_server.key, 60)
    past = TokenSigner(auth_server.key, 1, clock=lambda: time.time() - 100)

    def bad_tokens(target: str) -> dict[str, tuple[str, int]]:
        return {
            "missing": ("", 0),
            "forged": (jwt.encode({"sub": "admin", "aud": "segmentstore", "*": "READ_UPDATE"}, b"x" * 32,
                                  algorithm="HS256"), 0),
            "wrong resource": (real.issue("admin", {of_stream(SCOPE, "another"): Permission.READ_UPDATE}), 0),
            "expired": (past.issue("admin", {of_stream(SCOPE, target): Permission.READ_UPDATE}), 1),
        }

    read_only = {name: real.issue("reader", {of_stream(SCOPE, s): Permission.READ}) for name, s in
                 (("stream", stream), ("table", table_stream))}
    for commands, target, target_stream, kind in ((COMMANDS, segment, stream, "stream"),
                                                  (TABLE_COMMANDS, table, table_stream, "table")):
        for command, (make, writes) in commands.items():
            for label, (token, code) in bad_tokens(target_stream).items():
                assert_refused(await send(port, make(target, token)), code, f"{command} with a {label} token")
            reply = await send(port, make(target, read_only[kind]))
            if writes:
                assert_refused(reply, 0, f"{command} with a read-only token")
            else:
                assert not isinstance(reply, c.AuthTokenCheckFailed), f"{command} read refused: {reply!r}"

    # tokens the controller issues to the admin work (fetched per command: they live 2 s here)
    async with ControllerClient(auth_server.config("admin")) as controller:
        for command in ("CreateTableSegment", "UpdateTableEntries", "ReadTable", "RemoveTableKeys",
                        "DeleteTableSegment"):
            token = await controller.get_delegation_token(SCOPE, table_stream)
            reply = await send(port, TABLE_COMMANDS[command][0](table, token))
            assert not isinstance(reply, c.AuthTokenCheckFailed | c.ErrorMessage), f"{command}: {reply!r}"
        for command in ("SetupAppend", "ReadSegment", "TruncateSegment", "SealSegment", "DeleteSegment"):
            token = await controller.get_delegation_token(SCOPE, stream)
            reply = await send(port, COMMANDS[command][0](segment, token))
            assert not isinstance(reply, c.AuthTokenCheckFailed | c.ErrorMessage), f"{command}: {reply!r}"


async def test_system_is_untouchable_with_auth_on(auth_server: AuthServer) -> None:
    port = auth_server.server.segmentstore_port
    admin_everything = TokenSigner(auth_server.key, 60).issue("admin", {"prn::*": Permission.READ_UPDATE})
    for command, (make, _writes) in TABLE_COMMANDS.items():
        for token in ("", admin_everything):
            assert_refused(await send(port, make(SYSTEM_TABLE, token)), 0, f"{command} on {SYSTEM_TABLE}")
    async with ControllerClient(auth_server.config("admin")) as controller:
        with pytest.raises(AuthorizationError, match="internal"):
            await controller.get_delegation_token("_system", "_tables")
    async with StreamManager(auth_server.config("admin")) as admin:  # the controller still works
        assert await admin.create_scope(f"after-{uuid.uuid4().hex[:6]}")


async def test_system_is_untouchable_with_auth_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = Standalone(tmp_path_factory.mktemp("noauth") / "data", None, None, "--admin-port", "0")
    with server:
        port = server.segmentstore_port
        for command, (make, _writes) in TABLE_COMMANDS.items():
            assert_refused(await send(port, make(SYSTEM_TABLE, "")), 0, f"{command} on {SYSTEM_TABLE}")
        for command, (make, _writes) in COMMANDS.items():
            assert_refused(await send(port, make("_system/any/0.#epoch.0", "")), 0, f"{command} on _system")
        async with StreamManager(server.controller_uri) as manager:
            assert await manager.create_scope("open")
            assert await manager.create_stream("open", "s")
            writer = manager.create_writer("open", "s")
            await (await writer.write_event(b"x"))
            await writer.close()
        with grpc.insecure_channel(f"{HOST}:{server.controller_port}") as channel:
            from anabranch.protocol import controller_pb2 as pb
            from anabranch.protocol import controller_pb2_grpc as pb_grpc

            token = pb_grpc.ControllerServiceStub(channel).getDelegationToken(
                pb.StreamInfo(scope="open", stream="s"), timeout=TIMEOUT)
            assert token.delegationToken == ""  # auth off: no tokens, as Pravega
