"""Delegation tokens on the client side: fetched from the controller per stream, cached, renewed before expiry.

With credentials configured, every wire command carries the token of its segment's stream (as the official
clients do). A token is renewed when less than ``RENEW_MARGIN`` of its lifetime (at most 5 s, as the Rust
client) is left, and at once when a segment store answers TOKEN_EXPIRED; without credentials the token is ``""``
and the controller is never asked. The expiry is read from the token's ``exp`` claim without verifying it (only
the servers hold the key).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable

Fetch = Callable[[str, str], Awaitable[str]]
TOKEN_EXPIRED_CODE = 1
"""``AuthTokenCheckFailed.error_code`` of an expired token (0: any other token failure)."""
RENEW_MARGIN = 0.2
MAX_MARGIN = 5.0


def token_lifetime(token: str) -> tuple[float, float] | None:
    """(issued at, expires at) from a JWT's claims, or None when it does not expire or cannot be read."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return None
    return float(claims.get("iat", exp)), exp


class TokenCache:
    """The delegation token of each stream; ``enabled`` False answers ``""`` without asking anyone."""

    def __init__(self, fetch: Fetch, *, enabled: bool, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self.enabled = enabled
        self._clock = clock
        self._tokens: dict[tuple[str, str], tuple[str, float | None]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def get(self, scope: str, stream: str, *, refresh: bool = False) -> str:
        if not self.enabled:
            return ""
        key = (scope, stream)
        cached = self._tokens.get(key)
        if not refresh and cached is not None and not self._stale(cached[1]):
            return cached[0]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = self._tokens.get(key)
            if current is not None and current is not cached and not self._stale(current[1]):
                return current[0]
            token = await self._fetch(scope, stream)
            lifetime = token_lifetime(token)
            renew_at = None
            if lifetime is not None:
                issued, expires = lifetime
                renew_at = expires - min(MAX_MARGIN, max(0.0, expires - issued) * RENEW_MARGIN)
            self._tokens[key] = (token, renew_at)
            return token

    async def for_segment(self, segment: str, *, refresh: bool = False) -> str:
        """The token of the stream ``segment`` belongs to."""
        if not self.enabled:
            return ""
        scope, _, rest = segment.partition("/")
        return await self.get(scope, rest.partition("/")[0], refresh=refresh)

    def _stale(self, renew_at: float | None) -> bool:
        return renew_at is not None and self._clock() >= renew_at
