"""Errors of the control plane: segment-store replies seen by the controller, and metadata conflicts.

Each wire error reply the controller can receive maps to one class here (``segment_helper`` does the
mapping); the gRPC layer maps these classes to status enums or gRPC codes. Nothing parses messages.
"""

from __future__ import annotations

from anabranch.errors import AnabranchError


class ControllerError(AnabranchError):
    """Base of controller errors."""


class SegmentStoreError(ControllerError):
    """The segment store refused a request the controller sent."""

    def __init__(self, segment: str, message: str) -> None:
        super().__init__(f"{message}: {segment}")
        self.segment = segment


class NoSuchSegmentError(SegmentStoreError):
    """The segment (or table segment) does not exist on the segment store."""


class SegmentExistsError(SegmentStoreError):
    """The segment already exists."""


class SegmentSealedError(SegmentStoreError):
    """The segment is sealed."""


class BadOffsetError(SegmentStoreError):
    """A truncation offset is outside the segment's readable range."""


class TableNotEmptyError(SegmentStoreError):
    """A table segment that must be empty still holds entries."""


class WriteConflictError(ControllerError):
    """A conditional metadata update lost a race (wrong version or key missing/present); re-read and retry."""

    retriable = True


class SegmentStoreUnavailableError(ControllerError):
    """The segment store cannot be reached (or keeps answering WrongHost) after all retries."""

    retriable = True


class UnexpectedReplyError(ControllerError):
    """The segment store answered with a reply that does not fit the request."""


class NotFoundError(ControllerError):
    """A scope, stream, reader group, table or transaction does not exist."""


class StreamNotFoundError(NotFoundError):
    """No such stream."""


class ScopeNotFoundError(NotFoundError):
    """No such scope."""


class IllegalStateError(ControllerError):
    """The entity exists but is not in a state that allows the operation (e.g. a stream still being created)."""


class InvalidArgumentError(ControllerError, ValueError):
    """A request argument is out of range or inconsistent."""
