"""The segment store's token check for every wire command (the table docs/security.md shows).

``WireAuthorizer.check(request)`` returns None (go on) or the ``AuthTokenCheckFailed`` reply to send instead,
with Pravega's codes: TOKEN_EXPIRED (1) when the token is past its expiry, TOKEN_CHECK_FAILED (0) for a missing,
forged or malformed token or one that does not cover the segment with the permission. Reads need READ, anything
that changes a segment needs READ_UPDATE (Pravega asks only READ for the admin commands its controller sends;
Anabranch asks READ_UPDATE for them). Appends are authorized once, by their ``SetupAppend``.

``_system`` segments and controller metadata tables (``<scope>/_tables/...``) are system-only: whether auth is
on or off, only the system token (signed by the controller with the shared key) may touch them. With auth off,
everything else is open and tokens are not looked at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anabranch.auth.errors import TokenError, TokenExpiredError
from anabranch.auth.permissions import Permission
from anabranch.model.names import SYSTEM_SCOPE, is_table_segment_name
from anabranch.protocol import commands as c

if TYPE_CHECKING:
    from anabranch.auth.tokens import TokenVerifier  # jwt and cryptography: only when auth is on

log = logging.getLogger(__name__)

TOKEN_CHECK_FAILED = 0
TOKEN_EXPIRED = 1

R = Permission.READ
RU = Permission.READ_UPDATE

Names = Callable[[Any], tuple[str, ...]]


def _segment(request: Any) -> tuple[str, ...]:
    return (request.segment,)


def _segment_name(request: Any) -> tuple[str, ...]:
    return (request.segment_name,)


RULES: dict[type[c.Request], tuple[Permission, Names]] = {
    c.ReadSegment: (R, _segment),
    c.GetStreamSegmentInfo: (R, _segment_name),
    c.GetSegmentAttribute: (R, _segment_name),
    c.LocateOffset: (R, _segment),
    c.GetTableSegmentInfo: (R, _segment_name),
    c.ReadTable: (R, _segment),
    c.ReadTableKeys: (R, _segment),
    c.ReadTableEntries: (R, _segment),
    c.ReadTableEntriesDelta: (R, _segment),
    c.SetupAppend: (RU, _segment),
    c.CreateTransientSegment: (RU, lambda r: (r.parent_segment,)),
    c.CreateSegment: (RU, _segment),
    c.SealSegment: (RU, _segment),
    c.TruncateSegment: (RU, _segment),
    c.DeleteSegment: (RU, _segment),
    c.UpdateSegmentPolicy: (RU, _segment),
    c.UpdateSegmentAttribute: (RU, _segment_name),
    c.MergeSegments: (RU, lambda r: (r.target, r.source)),
    c.MergeSegmentsBatch: (RU, lambda r: (r.target, *r.sources)),
    c.CreateTableSegment: (RU, _segment),
    c.DeleteTableSegment: (RU, _segment),
    c.UpdateTableEntries: (RU, _segment),
    c.RemoveTableKeys: (RU, _segment),
}
"""Every wire request that names a segment: the permission it needs and the segments it touches."""


def is_system_segment(name: str) -> bool:
    return name.startswith(SYSTEM_SCOPE + "/") or is_table_segment_name(name)


class WireAuthorizer:
    """Checks the token of each request; ``enabled`` False leaves only the ``_system`` protection."""

    def __init__(self, verifier: TokenVerifier, *, enabled: bool) -> None:
        self.verifier = verifier
        self.enabled = enabled

    def check(self, request: c.Request) -> c.AuthTokenCheckFailed | None:
        rule = RULES.get(type(request))
        if rule is None:
            return None
        needed, names = rule
        segments = names(request)
        system_only = any(is_system_segment(s) for s in segments)
        if not self.enabled and not system_only:
            return None
        try:
            token = self.verifier.verify(request.delegation_token)  # type: ignore[attr-defined]
            if token.system:
                return None
            if system_only:
                raise TokenError(f"{segments[0]} is internal to Anabranch: only the controller may access it")
            for segment in segments:
                if not token.allows(segment, needed):
                    raise TokenError(f"the delegation token of {token.subject!r} does not grant {needed.name} "
                                     f"on {segment}")
        except TokenExpiredError as exc:
            return self._refuse(request, TOKEN_EXPIRED, str(exc))
        except TokenError as exc:
            return self._refuse(request, TOKEN_CHECK_FAILED, str(exc))
        return None

    @staticmethod
    def _refuse(request: c.Request, code: int, reason: str) -> c.AuthTokenCheckFailed:
        log.info("refused %s: %s", type(request).__name__, reason)
        return c.AuthTokenCheckFailed(request.request_id, reason, code)  # type: ignore[attr-defined]
