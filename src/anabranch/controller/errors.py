"""Errors of the control plane: segment-store replies seen by the controller, and metadata conflicts.

Each wire error reply the controller can receive maps to one class here (``segment_helper`` does the
mapping); the gRPC layer maps these classes to status enums or gRPC codes. Nothing parses messages. Each also
belongs to a family of ``anabranch.errors`` (not found, already exists, sealed, truncated, conflict, unavailable),
shared with the client's errors.
"""

from __future__ import annotations

from anabranch.errors import (
    AlreadyExistsError,
    AnabranchError,
    ConflictError,
    SealedError,
    TruncatedError,
    UnavailableError,
)
from anabranch.errors import NotFoundError as AnyNotFoundError


class ControllerError(AnabranchError):
    """Base of controller errors."""


class SegmentStoreError(ControllerError):
    """The segment store refused a request the controller sent."""

    def __init__(self, segment: str, message: str) -> None:
        super().__init__(f"{message}: {segment}")
        self.segment = segment


class NoSuchSegmentError(SegmentStoreError, AnyNotFoundError):
    """The segment (or table segment) does not exist on the segment store."""


class SegmentExistsError(SegmentStoreError, AlreadyExistsError):
    """The segment already exists."""


class SegmentSealedError(SegmentStoreError, SealedError):
    """The segment is sealed."""


class BadOffsetError(SegmentStoreError, TruncatedError):
    """A truncation offset is outside the segment's readable range."""


class TableNotEmptyError(SegmentStoreError):
    """A table segment that must be empty still holds entries."""


class WriteConflictError(ControllerError, ConflictError):
    """A conditional metadata update lost a race (wrong version or key missing/present); re-read and retry."""

    retriable = True


class SegmentStoreUnavailableError(ControllerError, UnavailableError):
    """The segment store cannot be reached (or keeps answering WrongHost) after all retries."""

    retriable = True


class UnexpectedReplyError(ControllerError):
    """The segment store answered with a reply that does not fit the request."""


class NotFoundError(ControllerError, AnyNotFoundError):
    """A scope, stream, reader group, table or transaction does not exist."""


class StreamNotFoundError(NotFoundError):
    """No such stream."""


class ScopeNotFoundError(NotFoundError):
    """No such scope."""


class IllegalStateError(ControllerError):
    """The entity exists but is not in a state that allows the operation (e.g. a stream still being created)."""


class InvalidArgumentError(ControllerError, ValueError):
    """A request argument is out of range or inconsistent."""


class SegmentStoreArgumentError(SegmentStoreError, InvalidArgumentError):
    """The segment store refused an argument the request carried (ErrorMessage with the IllegalArgument code)."""


class InvalidTruncationError(InvalidArgumentError):
    """A truncation stream cut does not fit the stream (the message says why)."""
