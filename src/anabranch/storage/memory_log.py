"""An in-memory Tier-1 log with the semantics of ``DurableDataLog`` and no files (for tests).

Owns a list of (sequence, payload) records. Invariants: sequences start at 1 and strictly
increase; records survive ``close`` so the same object can be ``open``ed again to simulate a
restart (a process crash is not simulated: every acked record is kept); ``truncate`` drops
records <= ``up_to`` but never resets the sequence counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from anabranch.storage.interfaces import Buffer, LogClosedError


class InMemoryDurableDataLog:
    """A ``DurableDataLog`` kept in memory. Re-``open`` the same object after ``close`` to simulate a restart."""

    def __init__(self) -> None:
        self._records: list[tuple[int, bytes]] = []
        self._last_sequence = 0
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def iter_records(self, after: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        for sequence, payload in list(self._records):
            if sequence > after:
                yield sequence, payload

    async def append(self, data: Buffer | Sequence[Buffer]) -> int:
        if not self._open:
            raise LogClosedError("the in-memory log is not open; call open() first")
        payload = bytes(data) if isinstance(data, bytes | bytearray | memoryview) else b"".join(data)
        self._last_sequence += 1
        sequence = self._last_sequence
        self._records.append((sequence, payload))
        await asyncio.sleep(0)
        return sequence

    async def truncate(self, up_to: int) -> None:
        self._records = [(seq, payload) for seq, payload in self._records if seq > up_to]

    async def close(self) -> None:
        self._open = False

    @property
    def last_sequence(self) -> int:
        """The sequence of the last appended record (0 if none was ever appended)."""
        return self._last_sequence
