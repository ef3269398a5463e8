"""The one table from segment-store error replies to kinds of error, shared by every client of the wire protocol.

``classify(reply)`` says what went wrong (a ``ReplyError``: its ``kind``, the segment, and what the reply carries
— the truncation offset, the server's error code and message), or None for a reply that is not an error. The
Python client (``anabranch.client.errors.error_from_reply``) and the controller's segment-store client
(``anabranch.controller.segment_helper.raise_for_reply``) each map a kind to their own exception class; every
class belongs to the matching family of ``anabranch.errors``. Pure, no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from anabranch.protocol import commands as c


class ReplyErrorKind(enum.Enum):
    NO_SUCH_SEGMENT = "no such segment"
    SEGMENT_EXISTS = "segment already exists"
    SEGMENT_SEALED = "segment is sealed"
    SEGMENT_TRUNCATED = "segment is truncated"
    CONDITIONAL_CHECK_FAILED = "conditional append failed"
    KEY_BAD_VERSION = "table key has another version"
    KEY_DOES_NOT_EXIST = "table key does not exist"
    TABLE_NOT_EMPTY = "table segment is not empty"
    WRONG_HOST = "segment not served here"
    TOKEN_REJECTED = "delegation token refused"
    UNSUPPORTED = "operation unsupported"
    ILLEGAL_ARGUMENT = "argument refused"
    SERVER_ERROR = "server error"


ERROR_REPLIES: Mapping[type[c.Reply], ReplyErrorKind] = {
    c.NoSuchSegment: ReplyErrorKind.NO_SUCH_SEGMENT,
    c.SegmentAlreadyExists: ReplyErrorKind.SEGMENT_EXISTS,
    c.SegmentIsSealed: ReplyErrorKind.SEGMENT_SEALED,
    c.SegmentIsTruncated: ReplyErrorKind.SEGMENT_TRUNCATED,
    c.ConditionalCheckFailed: ReplyErrorKind.CONDITIONAL_CHECK_FAILED,
    c.TableKeyBadVersion: ReplyErrorKind.KEY_BAD_VERSION,
    c.TableKeyDoesNotExist: ReplyErrorKind.KEY_DOES_NOT_EXIST,
    c.TableSegmentNotEmpty: ReplyErrorKind.TABLE_NOT_EMPTY,
    c.WrongHost: ReplyErrorKind.WRONG_HOST,
    c.AuthTokenCheckFailed: ReplyErrorKind.TOKEN_REJECTED,
    c.OperationUnsupported: ReplyErrorKind.UNSUPPORTED,
    c.ErrorMessage: ReplyErrorKind.SERVER_ERROR,
}
"""Every error reply of the wire protocol and what it means (``ErrorMessage`` with ILLEGAL_ARGUMENT is refined)."""


@dataclass(frozen=True, slots=True)
class ReplyError:
    kind: ReplyErrorKind
    segment: str = ""
    detail: str = ""
    """What the reply adds: the server's message, the refused token's reason, the unsupported operation."""
    start_offset: int = -1
    offset: int = -1
    event_number: int = -1
    error_code: int | None = None


def classify(reply: c.WireCommand) -> ReplyError | None:
    """What the error reply ``reply`` means, or None if it is not an error reply."""
    kind = ERROR_REPLIES.get(type(reply))  # type: ignore[arg-type]
    if kind is None:
        return None
    segment = str(getattr(reply, "segment", "") or "")
    if isinstance(reply, c.SegmentIsTruncated):
        return ReplyError(kind, segment, start_offset=reply.start_offset, offset=reply.offset)
    if isinstance(reply, c.ConditionalCheckFailed):
        return ReplyError(kind, segment, event_number=reply.event_number)
    if isinstance(reply, c.AuthTokenCheckFailed):
        reason = reply.server_stack_trace or ("token expired" if reply.error_code == 1 else "token check failed")
        return ReplyError(kind, segment, reason, error_code=reply.error_code)
    if isinstance(reply, c.OperationUnsupported):
        return ReplyError(kind, segment, reply.operation_name)
    if isinstance(reply, c.ErrorMessage):
        refined = ReplyErrorKind.ILLEGAL_ARGUMENT if reply.error_code == c.ErrorMessage.ILLEGAL_ARGUMENT else kind
        return ReplyError(refined, segment, reply.message, error_code=reply.error_code)
    return ReplyError(kind, segment)
