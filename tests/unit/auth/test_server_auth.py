"""Server-side auth settings: pluggable handlers, the exposure warning, option errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from anabranch.auth.errors import AuthConfigError, AuthenticationFailedError
from anabranch.auth.handlers import HandlerRegistry, Principal
from anabranch.auth.permissions import Permission
from anabranch.auth.server import ServerAuth, is_loopback, warn_if_exposed


class StaticBearer:
    """A second method, as Pravega's custom auth plugins: one static bearer token with full access."""

    method = "Bearer"

    def authenticate(self, credentials: str) -> Principal:
        if credentials != "static-token":
            raise AuthenticationFailedError("unknown bearer token")
        return Principal("service", self.method)

    def authorize(self, resource: str, principal: Principal) -> Permission:
        return Permission.READ_UPDATE


def test_a_bearer_handler_plugs_in_next_to_basic() -> None:
    auth = ServerAuth.create(enabled=True, handlers=HandlerRegistry(StaticBearer()))
    assert auth.check_http("Bearer static-token") == Principal("service", "Bearer")
    assert auth.handlers is not None
    assert auth.handlers.authorize("prn::/", Principal("service", "Bearer")) is Permission.READ_UPDATE
    with pytest.raises(AuthenticationFailedError, match="not supported here; use one of Bearer"):
        auth.check_http("Basic eDp5")
    with pytest.raises(AuthenticationFailedError, match="authentication is required"):
        auth.check_http(None)


def test_auth_off_checks_nothing_but_keeps_a_key() -> None:
    auth = ServerAuth.create()
    assert auth.check_http(None) is None
    assert auth.grpc_interceptors() == []
    assert auth.verifier.verify(auth.system_token()).system


def test_settings_errors(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="--password-file"):
        ServerAuth.create(enabled=True)
    with pytest.raises(AuthConfigError, match=r"does not exist|unreadable"):
        ServerAuth.create(enabled=True, password_file=tmp_path / "missing")
    assert ServerAuth.create(enabled=True, authenticates=False).enabled  # a segment store only checks tokens


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                 ("0.0.0.0", False), ("", False), ("10.1.2.3", False),
                                                 ("example.org", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_warning_when_exposed_without_auth_or_tls(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_if_exposed("the controller", "127.0.0.1", auth=False, tls=False)
        assert not caplog.records
        warn_if_exposed("the controller", "0.0.0.0", auth=True, tls=True)
        assert not caplog.records
        warn_if_exposed("the controller", "0.0.0.0", auth=False, tls=True)
        warn_if_exposed("the segment store", "10.0.0.1", auth=True, tls=False)
    assert "without authentication (--auth)" in caplog.records[0].getMessage()
    assert "without TLS (--tls-cert)" in caplog.records[1].getMessage()
