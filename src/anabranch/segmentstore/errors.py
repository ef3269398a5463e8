"""Errors of the segment store's data plane (containers, durable log, read index).

Each error carries the fields the wire server needs to build its reply (lengths, offsets, event
numbers), so nothing parses messages. ``ContainerClosedError`` is the only retriable one: the
container is shutting down or failed, and the operation may succeed after recovery.
"""

from __future__ import annotations

from anabranch.errors import AnabranchError


class SegmentStoreError(AnabranchError):
    """Base of the segment store's errors."""

    def __init__(self, segment: str, message: str) -> None:
        super().__init__(message)
        self.segment = segment


class SegmentExistsError(SegmentStoreError):
    """A segment of that name already exists."""

    def __init__(self, segment: str) -> None:
        super().__init__(segment, f"segment {segment!r} already exists")


class NoSuchSegmentError(SegmentStoreError):
    """No live segment of that name (never created, deleted, or merged away)."""

    def __init__(self, segment: str) -> None:
        super().__init__(segment, f"segment {segment!r} does not exist (never created, deleted or merged)")


class SegmentSealedError(SegmentStoreError):
    """The segment is sealed: it can no longer be modified. ``length`` is its final length."""

    def __init__(self, segment: str, length: int) -> None:
        super().__init__(segment, f"segment {segment!r} is sealed at length {length}")
        self.length = length


class SegmentTruncatedError(SegmentStoreError):
    """A read below the segment's start offset; ``start_offset`` is the first readable byte."""

    def __init__(self, segment: str, start_offset: int) -> None:
        super().__init__(segment, f"segment {segment!r} is truncated: the first readable offset is {start_offset}")
        self.start_offset = start_offset


class BadOffsetError(SegmentStoreError):
    """An offset condition failed: a conditional append whose expected offset is not the length
    (``offset`` = current length), or a truncate outside [start, length] (``offset`` = start offset)."""

    def __init__(self, segment: str, offset: int, message: str) -> None:
        super().__init__(segment, message)
        self.offset = offset


class InvalidOffsetError(SegmentStoreError):
    """A read beyond the end of a sealed segment (or at a negative offset)."""

    def __init__(self, segment: str, offset: int, length: int) -> None:
        super().__init__(segment, f"offset {offset} is outside segment {segment!r} (length {length})")
        self.offset = offset
        self.length = length


class BadEventNumberError(SegmentStoreError):
    """The writer's event number is not greater than the last one stored (``last_event_number``)."""

    def __init__(self, segment: str, writer_id: object, event_number: int, last_event_number: int) -> None:
        super().__init__(
            segment,
            f"writer {writer_id} sent event number {event_number} to {segment!r}, "
            f"but its last stored event number is {last_event_number}",
        )
        self.event_number = event_number
        self.last_event_number = last_event_number


class ContainerClosedError(SegmentStoreError):
    """The segment container is closed or failed; retry after it recovers."""

    retriable = True

    def __init__(self, container_id: int, reason: str = "closed") -> None:
        super().__init__("", f"segment container {container_id} is {reason}")
        self.container_id = container_id


class ContainerNotOwnedError(SegmentStoreError):
    """The segment's container does not run on this segment store (cluster mode: it is owned by another one,
    or is still recovering here). The wire server answers ``WrongHost``; ask the controller for the owner."""

    retriable = True

    def __init__(self, segment: str, container_id: int) -> None:
        super().__init__(
            segment,
            f"segment container {container_id} (holding {segment!r}) does not run on this segment store; "
            "ask the controller where it runs",
        )
        self.container_id = container_id


class InvalidRequestError(SegmentStoreError):
    """A request's field is out of range or unencodable (a name too long, an enum value unknown): refused
    before anything is queued, so it never reaches the durable log. The wire server answers ``ErrorMessage``
    with the IllegalArgument code."""

    def __init__(self, segment: str, message: str) -> None:
        super().__init__(segment, message)


class DiskFullError(SegmentStoreError):
    """Tier-1 has no space left: the operation was not made durable (nothing acknowledged is lost). Reads keep
    working; retry once space is freed (writes resume by themselves)."""

    retriable = True

    def __init__(self, container_id: int, detail: str = "") -> None:
        super().__init__(
            "",
            f"segment container {container_id} cannot write: its Tier-1 log has no space left on its disk"
            + (f" ({detail})" if detail else "")
            + "; nothing was written; retry once space is freed",
        )
        self.container_id = container_id
