"""Map segment-store and table errors to wire replies (spec §8.2).

``error_reply`` returns the reply for an operation-level error, or None when the error is not one the
protocol can report: the caller then logs it and closes the connection. Stack traces are always ``""``.
A refused request (InvalidRequestError) answers ``ErrorMessage`` with the IllegalArgument code; a full disk
(DiskFullError) answers ``ErrorMessage`` with the unspecified code (Pravega has no retriable code) and a
message that says so and that the request may be retried.
"""

from __future__ import annotations

from anabranch.protocol.commands import (
    ErrorMessage,
    NoSuchSegment,
    Reply,
    SegmentAlreadyExists,
    SegmentIsSealed,
    SegmentIsTruncated,
    TableKeyBadVersion,
    TableKeyDoesNotExist,
    TableSegmentNotEmpty,
    WrongHost,
)
from anabranch.protocol.validation import MAX_MESSAGE_BYTES, shorten
from anabranch.segmentstore.errors import (
    BadOffsetError,
    ContainerNotOwnedError,
    DiskFullError,
    InvalidOffsetError,
    InvalidRequestError,
    NoSuchSegmentError,
    SegmentExistsError,
    SegmentSealedError,
    SegmentStoreError,
    SegmentTruncatedError,
)
from anabranch.segmentstore.tables.errors import (
    TableArgumentError,
    TableKeyBadVersionError,
    TableKeyDoesNotExistError,
    TableSegmentNotEmptyError,
)


def error_reply(
    exc: BaseException, request_id: int, segment: str, offset: int = -1, *, report_against: str | None = None
) -> Reply | None:
    """The reply telling the client about ``exc`` raised by a request on ``segment`` (None: close instead).

    ``offset`` is the offset the request named (reads, truncation, table offset conditions), -1 if none.
    ``report_against`` names the segment every reply must carry (merges report errors against the source).
    """
    name = report_against or (exc.segment if isinstance(exc, SegmentStoreError) else "") or segment
    if isinstance(exc, ContainerNotOwnedError):
        return WrongHost(request_id, name, "", "")
    if isinstance(exc, NoSuchSegmentError):
        return NoSuchSegment(request_id, name, "", offset)
    if isinstance(exc, SegmentExistsError):
        return SegmentAlreadyExists(request_id, name, "")
    if isinstance(exc, SegmentSealedError):
        return SegmentIsSealed(request_id, name, "", -1)
    if isinstance(exc, SegmentTruncatedError):
        return SegmentIsTruncated(request_id, name, exc.start_offset, "", offset)
    if isinstance(exc, BadOffsetError):
        return SegmentIsTruncated(request_id, name, exc.offset, "", offset)
    if isinstance(exc, TableSegmentNotEmptyError):
        return TableSegmentNotEmpty(request_id, segment, "")
    if isinstance(exc, TableKeyDoesNotExistError):
        return TableKeyDoesNotExist(request_id, segment, "")
    if isinstance(exc, TableKeyBadVersionError):
        return TableKeyBadVersion(request_id, segment, "")
    if isinstance(exc, TableArgumentError | InvalidOffsetError | InvalidRequestError):
        return ErrorMessage(request_id, segment, shorten(str(exc), MAX_MESSAGE_BYTES), ErrorMessage.ILLEGAL_ARGUMENT)
    if isinstance(exc, DiskFullError):
        return disk_full_reply(exc, request_id, segment)
    return None


def disk_full_reply(exc: DiskFullError, request_id: int, segment: str) -> ErrorMessage:
    """The ErrorMessage telling a client that ``segment``'s container has no disk space (retriable)."""
    return ErrorMessage(request_id, segment, shorten(f"disk full: {exc}", MAX_MESSAGE_BYTES),
                        ErrorMessage.UNSPECIFIED)
