"""``ServerAuth``: what a server process knows about auth, built once from its command-line options.

The segment store takes ``wire_authorizer()``, the controller ``grpc_interceptors()`` and ``system_token``
(for its own wire requests), the admin endpoint ``check_http``. With ``enabled`` False nobody is authenticated
and no user tokens are issued, but ``_system`` stays reserved to holders of the system token.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc

from anabranch.auth.errors import AuthConfigError
from anabranch.auth.grpc_auth import AuthInterceptor, ControllerAuthorizer
from anabranch.auth.handlers import HandlerRegistry, PasswordAuthHandler, Principal
from anabranch.auth.tokens import DEFAULT_TTL, TokenSigner, TokenVerifier, load_or_create_key, random_key
from anabranch.auth.wire_auth import WireAuthorizer

log = logging.getLogger(__name__)


@dataclass
class ServerAuth:
    enabled: bool
    signer: TokenSigner
    verifier: TokenVerifier
    handlers: HandlerRegistry | None = None

    @classmethod
    def create(cls, *, enabled: bool = False, password_file: Path | None = None, key: bytes | None = None,
               key_file: Path | None = None, token_ttl: float | None = DEFAULT_TTL,
               handlers: HandlerRegistry | None = None, authenticates: bool = True) -> ServerAuth:
        """Auth settings from options: the key from ``key`` or ``key_file`` (else a random one, good for this
        process only); with ``enabled``, users from ``password_file`` unless ``handlers`` are given or the
        server does not ``authenticate`` anyone (a segment store only checks tokens)."""
        if key is None:
            key = load_or_create_key(key_file) if key_file is not None else random_key()
        if enabled and authenticates and handlers is None:
            if password_file is None:
                raise AuthConfigError("--auth needs --password-file (create users with 'anabranch user add')")
            handlers = HandlerRegistry(PasswordAuthHandler(password_file))
        if token_ttl is not None and token_ttl <= 0:
            raise AuthConfigError(f"token TTL must be positive, got {token_ttl}")
        return cls(enabled, TokenSigner(key, token_ttl), TokenVerifier(key), handlers if enabled else None)

    def system_token(self) -> str:
        return self.signer.system_token()

    def wire_authorizer(self) -> WireAuthorizer:
        return WireAuthorizer(self.verifier, enabled=self.enabled)

    def grpc_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        if not self.enabled:
            return []
        assert self.handlers is not None
        return [AuthInterceptor(ControllerAuthorizer(self.handlers, self.signer))]

    def check_http(self, authorization: str | None) -> Principal | None:
        """The admin endpoint's check: None with auth off, else the principal (AuthenticationFailedError)."""
        if not self.enabled:
            return None
        assert self.handlers is not None
        return self.handlers.authenticate(authorization)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_exposed(what: str, host: str, *, auth: bool, tls: bool) -> None:
    """Log a warning when ``what`` listens beyond loopback without authentication or without TLS."""
    if is_loopback(host):
        return
    missing = [name for name, on in (("authentication (--auth)", auth), ("TLS (--tls-cert)", tls)) if not on]
    if missing:
        log.warning("%s listens on %s without %s: anyone who can reach it can %s", what, host,
                    " or ".join(missing), "do anything" if not auth else "read the traffic")
