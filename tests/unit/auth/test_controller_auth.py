"""The controller's rpc → permission table and the authorizer behind the gRPC interceptor."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from anabranch.auth.errors import AuthenticationFailedError, PermissionDeniedError
from anabranch.auth.grpc_auth import ControllerAuthorizer
from anabranch.auth.handlers import HandlerRegistry, PasswordAuthHandler, Principal
from anabranch.auth.passwords import PasswordFile
from anabranch.auth.rpc_rules import LISTINGS, RULES
from anabranch.auth.tokens import TokenSigner, TokenVerifier
from anabranch.protocol import controller_pb2 as pb

KEY = b"controller-key" * 3
ACCESS = pb.StreamInfo.AccessOperation


def basic(user: str, password: str) -> tuple[tuple[str, str]]:
    return (("authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()),)


@pytest.fixture(scope="module")
def authorizer(tmp_path_factory: pytest.TempPathFactory) -> ControllerAuthorizer:
    path = tmp_path_factory.mktemp("auth") / "users"
    users = PasswordFile(path)
    users.add("admin", "a", "prn::*,READ_UPDATE", iterations=1000)
    users.add("reader", "r", "prn::/scope:s,READ;prn::/scope:s/*,READ", iterations=1000)
    users.add("writer", "w", "prn::/scope:s/stream:t,READ_UPDATE", iterations=1000)
    users.add("tables", "t", "prn::/scope:s/key-value-table:k,READ_UPDATE", iterations=1000)
    return ControllerAuthorizer(HandlerRegistry(PasswordAuthHandler(path)), TokenSigner(KEY, 60))


def test_every_rpc_of_the_service_has_a_rule() -> None:
    rpcs = set(pb.DESCRIPTOR.services_by_name["ControllerService"].methods_by_name)
    assert rpcs == set(RULES), f"missing: {rpcs - set(RULES)}, unknown: {set(RULES) - rpcs}"
    assert set(LISTINGS) <= set(RULES)


def test_authentication(authorizer: ControllerAuthorizer) -> None:
    assert authorizer.authenticate(basic("admin", "a")) == Principal("admin", "Basic")
    for metadata in ((), basic("admin", "b"), basic("nobody", "a"), (("authorization", "Basic !!!"),),
                     (("authorization", "Bearer abc"),)):
        with pytest.raises(AuthenticationFailedError):
            authorizer.authenticate(metadata)


def test_password_file_changes_take_effect(tmp_path: Path) -> None:
    path = tmp_path / "users"
    PasswordFile(path).add("a", "one", "prn::*,READ", iterations=1000)
    handlers = HandlerRegistry(PasswordAuthHandler(path))
    handlers.authenticate(basic("a", "one")[0][1])
    PasswordFile(path).add("a", "two", "prn::*,READ", iterations=1000)
    with pytest.raises(AuthenticationFailedError):
        handlers.authenticate(basic("a", "one")[0][1])
    handlers.authenticate(basic("a", "two")[0][1])


def stream(scope: str = "s", name: str = "t", access: int = ACCESS.UNSPECIFIED) -> pb.StreamInfo:
    return pb.StreamInfo(scope=scope, stream=name, accessOperation=access)  # type: ignore[arg-type]


def test_rules_per_user(authorizer: ControllerAuthorizer) -> None:
    reader, writer = Principal("reader", "Basic"), Principal("writer", "Basic")
    authorizer.check("getCurrentSegments", reader, stream())
    authorizer.check("createReaderGroup", reader, pb.ReaderGroupConfiguration(scope="s", readerGroupName="g"))
    for rpc, request in (("sealStream", stream()), ("createStream", pb.StreamConfig(streamInfo=stream("s", "u"))),
                         ("createScope", pb.ScopeInfo(scope="x")), ("deleteScope", pb.ScopeInfo(scope="s"))):
        with pytest.raises(PermissionDeniedError, match="READ_UPDATE"):
            authorizer.check(rpc, reader, request)
    authorizer.check("sealStream", writer, stream())
    with pytest.raises(PermissionDeniedError):
        authorizer.check("sealStream", writer, stream("s", "other"))
    with pytest.raises(PermissionDeniedError, match="not authorized"):
        authorizer.check("noSuchRpc", writer, stream())


def claims(token: str) -> dict[str, str]:
    return {k: v.name for k, v in TokenVerifier(KEY).verify(token).claims.items()}


def test_token_permission_by_access_operation(authorizer: ControllerAuthorizer) -> None:
    reader, writer = Principal("reader", "Basic"), Principal("writer", "Basic")
    rule = RULES["getDelegationToken"]
    issue = authorizer.token_for
    assert claims(issue("getDelegationToken", writer, stream(), rule)) == {"prn::/scope:s/stream:t": "READ_UPDATE"}
    assert claims(issue("getDelegationToken", writer, stream(access=ACCESS.READ), rule)) == \
        {"prn::/scope:s/stream:t": "READ"}
    assert claims(issue("getDelegationToken", reader, stream(), rule)) == {"prn::/scope:s/stream:t": "READ"}
    with pytest.raises(PermissionDeniedError):
        issue("getDelegationToken", reader, stream(access=ACCESS.WRITE), rule)
    # readers write their reader group's state with READ on the scope's contents
    assert claims(issue("getDelegationToken", reader, stream("s", "_RGg_kvtable"), rule)) == \
        {"prn::/scope:s/stream:_RGg_kvtable": "READ_UPDATE"}
    assert claims(issue("getCurrentSegments", writer, stream(), RULES["getCurrentSegments"])) == \
        {"prn::/scope:s/stream:t": "READ_UPDATE"}


@pytest.mark.parametrize(("scope", "name"), [("_system", "anything"), ("s", "_tables")])
def test_no_user_token_for_internal_tables(authorizer: ControllerAuthorizer, scope: str, name: str) -> None:
    with pytest.raises(PermissionDeniedError, match="internal"):
        authorizer.token_for("getDelegationToken", Principal("admin", "Basic"), stream(scope, name),
                             RULES["getDelegationToken"])


def test_listings_show_only_readable_entries(authorizer: ControllerAuthorizer) -> None:
    writer = Principal("writer", "Basic")
    request = pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope="s"))
    assert authorizer.check("listStreamsInScope", writer, request) is True
    response = pb.StreamsInScopeResponse(streams=[stream("s", "t"), stream("s", "u")])
    authorizer.filter_listing("listStreamsInScope", writer, request, response)
    assert [s.stream for s in response.streams] == ["t"]
    scopes = pb.ScopesResponse(scopes=["s", "x"])
    authorizer.filter_listing("listScopes", Principal("reader", "Basic"), pb.ScopesRequest(), scopes)
    assert list(scopes.scopes) == ["s"]
    assert authorizer.check("listScopes", Principal("admin", "Basic"), pb.ScopesRequest()) is False


def test_key_value_table_permission_gives_table_tokens(authorizer: ControllerAuthorizer) -> None:
    tables = Principal("tables", "Basic")
    rule = RULES["getDelegationToken"]
    authorizer.check("getDelegationToken", tables, stream("s", "k"))
    assert claims(authorizer.token_for("getDelegationToken", tables, stream("s", "k"), rule)) == \
        {"prn::/scope:s/stream:k": "READ_UPDATE"}
    with pytest.raises(PermissionDeniedError):
        authorizer.check("getDelegationToken", tables, stream("s", "t"))
    with pytest.raises(PermissionDeniedError):
        authorizer.check("sealStream", tables, stream("s", "k"))
