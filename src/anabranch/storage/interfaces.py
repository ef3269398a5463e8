"""The storage contracts of the segment store: Tier-1 durable logs and long-term storage (LTS).

- ``DurableDataLog`` (Tier-1): an append-only sequence of records. ``append`` completes only when the
  record is durable (fsync'd); appends that arrive while a write is in flight are group-committed
  into the next write with one fsync. Recovery iterates the records in order; a torn record at the
  tail is dropped, never returned. ``truncate`` lets the log drop records already moved to LTS.
- ``ChunkStorage`` (LTS, low level): named chunks of bytes on a filesystem or an object store.
- ``SegmentStorage`` (LTS, segment level): segments made of chunks, with the chunk metadata kept
  durably in LTS itself, so that LTS alone holds everything needed once Tier-1 is truncated.

Every implementation passes the conformance suites in ``anabranch.testing``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from anabranch.errors import AnabranchError

Buffer = bytes | bytearray | memoryview


def buffers_of(data: Buffer | Sequence[Buffer]) -> Sequence[Buffer]:
    """``data`` as a sequence of buffers (a single buffer is a sequence of one)."""
    return (data,) if isinstance(data, bytes | bytearray | memoryview) else data


class StorageError(AnabranchError):
    """Base of storage errors."""


class LogClosedError(StorageError):
    """The durable log was closed (or failed) while an append was pending."""

    retriable = True


class StorageFullError(StorageError):
    """The device holding the log or chunk has no space left. Nothing of the failed write remains (the file
    was cut back to its previous length) and the log or chunk stays usable: retry once space is freed."""

    retriable = True


class ChunkNotFoundError(StorageError):
    """No chunk of that name."""


class ChunkExistsError(StorageError):
    """A chunk of that name already exists."""


class StorageSegmentNotFoundError(StorageError):
    """LTS holds no segment of that name."""


class StorageSegmentExistsError(StorageError):
    """LTS already holds a segment of that name."""


class StorageSegmentSealedError(StorageError):
    """The LTS segment is sealed and cannot be written."""


class StorageSegmentNotSealedError(StorageError):
    """The operation (concat of a source) needs a sealed LTS segment, and this one is not sealed."""


class BadStorageOffsetError(StorageError):
    """A write did not start at the current LTS length, or a read/truncate is out of range."""


class DurableDataLog(Protocol):
    async def open(self) -> None:
        """Open (creating if needed), and drop any torn record at the tail."""

    def iter_records(self, after: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        """Yield (sequence, payload) of every durable record with sequence > ``after``, in order (an async
        iterator: a replicated log reads over the network).

        Called during recovery, after ``open`` and before the first ``append``.
        """

    async def append(self, data: Buffer | Sequence[Buffer]) -> int:
        """Append one record (several buffers are concatenated) and return its sequence number
        (strictly increasing, starting at 1, never reused after a restart), once durable."""

    async def truncate(self, up_to: int) -> None:
        """Records with sequence <= ``up_to`` are no longer needed and may be deleted."""

    async def close(self) -> None:
        """Finish pending appends, then release files. Appends after close raise LogClosedError."""


class ChunkStorage(Protocol):
    async def create(self, name: str) -> None: ...

    async def write(self, name: str, offset: int, data: Buffer | Sequence[Buffer]) -> int:
        """Append ``data`` (one buffer, or several written back to back) at ``offset`` (must equal the chunk's
        length); returns bytes written. Durable on return. Backends that cannot append (object stores) report
        ``supports_append = False``."""

    async def read(self, name: str, offset: int, length: int) -> bytes: ...

    async def length(self, name: str) -> int: ...

    async def exists(self, name: str) -> bool: ...

    async def delete(self, name: str) -> None: ...

    async def list(self, prefix: str = "") -> list[str]: ...

    @property
    def supports_append(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class StorageSegmentInfo:
    name: str
    length: int
    start_offset: int
    sealed: bool


class SegmentStorage(Protocol):
    async def create(self, segment: str) -> None: ...

    async def write(self, segment: str, offset: int, data: Buffer | Sequence[Buffer]) -> None:
        """Append at ``offset``, which must equal the current LTS length of the segment."""

    async def read(self, segment: str, offset: int, length: int) -> bytes:
        """Read up to ``length`` bytes from ``offset`` (which must be in [start_offset, length])."""

    async def get_info(self, segment: str) -> StorageSegmentInfo: ...

    async def exists(self, segment: str) -> bool: ...

    async def seal(self, segment: str) -> None: ...

    async def concat(self, target: str, source: str) -> None:
        """Append all of sealed ``source`` to ``target`` (by relinking chunks), then remove ``source``."""

    async def truncate(self, segment: str, offset: int) -> None:
        """Data below ``offset`` is no longer needed; whole chunks below it are deleted."""

    async def delete(self, segment: str) -> None: ...

    async def close(self) -> None: ...
