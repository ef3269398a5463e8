"""Delegation tokens: JWTs the controller signs and the segment stores verify with a shared key.

A token carries, as Pravega's ``JsonWebToken``, ``sub`` (the user), ``aud`` = ``segmentstore``, ``iat``, ``exp``
and one claim per resource, ``"prn::/scope:S/stream:T": "READ_UPDATE"``. The segment store matches a claim
against a segment name as Pravega's ``TokenVerifierImpl`` does: strip ``prn::``, ``/scope:`` and ``stream:``
from the claim, then ``S/T`` covers ``S/T`` and every segment ``S/T/...``; ``*`` covers everything.
The system token (the controller's own calls and jobs) additionally carries ``SYSTEM_CLAIM``: only it may
touch ``_system`` segments and controller metadata tables, whatever its other claims say.

Signing is HS256 with the key from ``--token-signing-key-file`` (shared by every controller and segment store;
created with a random key on first use) or, in ``standalone``, a random key made in the process.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from anabranch.auth.errors import AuthConfigError, TokenError, TokenExpiredError
from anabranch.auth.permissions import Permission

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
AUDIENCE = "segmentstore"
SYSTEM_SUBJECT = "_system"
SYSTEM_CLAIM = "anabranch:system"
MIN_KEY_BYTES = 16
DEFAULT_TTL = 600.0
SYSTEM_TOKEN_TTL = 3600.0
_RESERVED = frozenset({"sub", "aud", "exp", "iat", "nbf", "iss", "jti", SYSTEM_CLAIM})
_CLAIM_PARTS = re.compile(r"prn::|/scope:|stream:")


def random_key() -> bytes:
    return secrets.token_urlsafe(48).encode()


def load_or_create_key(path: Path) -> bytes:
    """The signing key in ``path``; a missing file is created (mode 600) with a random key, exclusively, so
    processes starting together agree on one key."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise AuthConfigError(f"cannot create token signing key file {path}: {exc}") from None
    else:
        with os.fdopen(fd, "wb") as out:
            out.write(random_key() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        log.info("created token signing key file %s; give the same file to every controller and segment store",
                 path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise AuthConfigError(f"cannot read token signing key file {path}: {exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise AuthConfigError(f"token signing key file {path} holds {len(key)} bytes; it needs at least "
                              f"{MIN_KEY_BYTES} (delete it to have a random key created)")
    return key


def claim_covers(claim: str, segment: str) -> bool:
    """Pravega's claim match: ``prn::/scope:S/stream:T`` covers segment ``S/T`` and ``S/T/...``."""
    key = _CLAIM_PARTS.sub("", claim)
    return (key == "*" or segment == key or (key.endswith("/") and segment.startswith(key))
            or segment.startswith(key + "/"))


@dataclass(slots=True)
class TokenSigner:
    """Issues delegation tokens (``ttl`` seconds; None: never expire) and the system token."""

    key: bytes
    ttl: float | None = DEFAULT_TTL
    clock: Callable[[], float] = time.time
    _system: tuple[str, float] | None = field(default=None, init=False, repr=False)

    def issue(self, subject: str, claims: dict[str, Permission]) -> str:
        now = int(self.clock())
        payload: dict[str, Any] = {"sub": subject, "aud": AUDIENCE, "iat": now}
        if self.ttl is not None:
            payload["exp"] = now + max(1, round(self.ttl))
        payload.update({resource: permission.name for resource, permission in claims.items()})
        return jwt.encode(payload, self.key, algorithm=ALGORITHM)

    def system_token(self) -> str:
        """The controller's token: every resource, ``_system`` included; re-issued well before it expires."""
        now = self.clock()
        if self._system is None or self._system[1] - now < SYSTEM_TOKEN_TTL / 4:
            issued = int(now)
            token = jwt.encode({"sub": SYSTEM_SUBJECT, "aud": AUDIENCE, "iat": issued,
                                "exp": issued + int(SYSTEM_TOKEN_TTL), "*": Permission.READ_UPDATE.name,
                                SYSTEM_CLAIM: True}, self.key, algorithm=ALGORITHM)
            self._system = (token, issued + SYSTEM_TOKEN_TTL)
        return self._system[0]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    expires: float | None
    claims: dict[str, Permission]
    system: bool

    def allows(self, segment: str, needed: Permission) -> bool:
        return any(permission >= needed and claim_covers(claim, segment) for claim, permission in self.claims.items())


@dataclass(slots=True)
class TokenVerifier:
    """Checks tokens: signature, audience, expiry; remembers recently verified tokens (bounded)."""

    key: bytes
    clock: Callable[[], float] = time.time
    cache_size: int = 4096
    _cache: dict[str, VerifiedToken] = field(default_factory=dict, init=False, repr=False)

    def verify(self, token: str) -> VerifiedToken:
        if not token:
            raise TokenError("no delegation token (get one from the controller: getDelegationToken)")
        verified = self._cache.get(token)
        if verified is None:
            verified = self._decode(token)
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[token] = verified
        if verified.expires is not None and verified.expires <= self.clock():
            self._cache.pop(token, None)
            raise TokenExpiredError("the delegation token has expired; get a new one from the controller")
        return verified

    def _decode(self, token: str) -> VerifiedToken:
        try:
            payload = jwt.decode(token, self.key, algorithms=[ALGORITHM], audience=AUDIENCE,
                                 options={"verify_exp": False, "require": ["sub", "aud"]})
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid delegation token: {exc}") from None
        claims: dict[str, Permission] = {}
        for name, value in payload.items():
            if name in _RESERVED:
                continue
            try:
                claims[name] = Permission[str(value)]
            except KeyError:
                raise TokenError(f"invalid delegation token: claim {name!r} has permission {value!r}") from None
        exp = payload.get("exp")
        if exp is not None and not isinstance(exp, int | float):
            raise TokenError("invalid delegation token: exp is not a number")
        return VerifiedToken(str(payload["sub"]), None if exp is None else float(exp), claims,
                             payload.get(SYSTEM_CLAIM) is True)
