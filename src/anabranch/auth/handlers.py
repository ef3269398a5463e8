"""Pluggable authentication handlers, chosen by the method of the ``authorization`` header.

A request carries ``authorization: <Method> <credentials>``. ``HandlerRegistry`` hands the credentials to the
handler registered for the method (``Basic`` → ``PasswordAuthHandler`` by default); the handler returns a
``Principal`` or raises ``AuthenticationFailedError``, and later answers which ``Permission`` the principal
has on a resource. Another method (``Bearer`` with an identity provider, say) is added by registering an
object with the same three members, as Pravega's ``AuthHandler`` plugins.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from anabranch.auth.errors import AuthConfigError, AuthenticationFailedError
from anabranch.auth.passwords import PasswordFile, User, verify_password
from anabranch.auth.permissions import Permission

log = logging.getLogger(__name__)

BASIC = "Basic"
BEARER = "Bearer"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    method: str


class AuthHandler(Protocol):
    method: str

    def authenticate(self, credentials: str) -> Principal: ...

    def authorize(self, resource: str, principal: Principal) -> Permission: ...


class PasswordAuthHandler:
    """``Basic base64(user:password)`` against a password file (re-read when it changes on disk).

    Verifying a slow hash on every rpc would cost ~0.1 s each, so a successful check is remembered as an HMAC
    of the credentials under a per-process key (never the password itself) until the file changes.
    """

    method = BASIC

    def __init__(self, path: Path) -> None:
        self.file = PasswordFile(path)
        self._pepper = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}
        self._verified: set[bytes] = set()
        self._reload()

    def _reload(self) -> None:
        try:
            stat = self.file.path.stat()
        except OSError as exc:
            if self._stamp is None:
                raise AuthConfigError(f"password file {self.file.path} is unreadable: {exc}") from None
            log.warning("password file %s unreadable (%s); keeping the users loaded before", self.file.path, exc)
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            users = self.file.load()
        except AuthConfigError:
            if self._stamp is None:
                raise
            log.warning("password file %s is invalid; keeping the users loaded before", self.file.path,
                        exc_info=True)
            return
        with self._lock:
            self._users, self._stamp, self._verified = users, stamp, set()
        log.info("loaded %d user(s) from %s", len(users), self.file.path)

    def authenticate(self, credentials: str) -> Principal:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationFailedError("Basic credentials are not base64 of user:password") from None
        name, sep, password = decoded.partition(":")
        if not sep or not name:
            raise AuthenticationFailedError("Basic credentials are not base64 of user:password")
        self._reload()
        user = self._users.get(name)
        digest = hmac.new(self._pepper, decoded.encode(), hashlib.sha256).digest()
        if user is not None and digest in self._verified:
            return Principal(name, self.method)
        if user is None or not verify_password(password, user.password_hash):
            raise AuthenticationFailedError(f"wrong user name or password for {name!r}")
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified.add(digest)
        return Principal(name, self.method)

    def authorize(self, resource: str, principal: Principal) -> Permission:
        user = self._users.get(principal.name)
        return Permission.NONE if user is None else user.acl.permission_for(resource)


class HandlerRegistry:
    """The authentication handlers by method; ``authenticate`` takes the whole ``authorization`` value."""

    def __init__(self, *handlers: AuthHandler) -> None:
        self._handlers: dict[str, AuthHandler] = {}
        for handler in handlers:
            self.register(handler)

    def register(self, handler: AuthHandler) -> None:
        self._handlers[handler.method.lower()] = handler

    @property
    def methods(self) -> list[str]:
        return sorted(h.method for h in self._handlers.values())

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.strip():
            raise AuthenticationFailedError(
                "authentication is required: send 'authorization: Basic base64(user:password)' (official client: "
                "auth_enabled=True with env pravega_client_auth_method/_username/_password)")
        method, _, credentials = authorization.strip().partition(" ")
        handler = self._handlers.get(method.lower())
        if handler is None:
            raise AuthenticationFailedError(f"authentication method {method!r} is not supported here; "
                                            f"use one of {', '.join(self.methods)}")
        return handler.authenticate(credentials)

    def authorize(self, resource: str, principal: Principal) -> Permission:
        handler = self._handlers.get(principal.method.lower())
        return Permission.NONE if handler is None else handler.authorize(resource, principal)
