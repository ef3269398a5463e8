"""Reply backpressure for one connection: bytes of replies being built or waiting to be sent stay bounded.

A client that pipelines requests and never reads the replies must not make the server buffer them without
bound. Two limits, as Pravega's connection handling:
- the transport's send buffer has a high-water mark (``HIGH_WATER`` = 1 MiB) and a low one (``LOW_WATER`` =
  640 KiB): above the high mark the connection is *paused*, which stops reading new requests from its socket
  and stops starting replies that carry data; below the low mark it resumes;
- a reply that carries data (a segment read, a page of table entries) first reserves its size here: it may
  start only while the connection is not paused and the reserved bytes stay under the high mark (one reply
  may always start when nothing else is reserved, so a 2 MiB read still goes through, one at a time).
So at most about ``HIGH_WATER`` + one reply + the high mark of the transport are held per connection, however
many requests are queued. Waiters are served in arrival order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

HIGH_WATER = 1024 * 1024
LOW_WATER = 640 * 1024


class ReplyBudget:
    """Reservations of reply bytes for one connection (see the module docstring)."""

    def __init__(self, high_water: int = HIGH_WATER) -> None:
        self.high_water = high_water
        self.reserved = 0
        self.paused = False
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def set_paused(self, paused: bool) -> None:
        """The transport's send buffer passed the high mark (True) or fell below the low mark (False)."""
        self.paused = paused
        self._wake()

    def _fits(self, size: int) -> bool:
        return not self.paused and (self.reserved == 0 or self.reserved + size <= self.high_water)

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        """Hold ``size`` bytes while building and handing over one reply (waits for room first)."""
        if self._waiters or not self._fits(size):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (size, waiter)
            self._waiters.append(entry)
            try:
                await waiter
            except BaseException:
                if entry in self._waiters:
                    self._waiters.remove(entry)
                elif waiter.done() and not waiter.cancelled():
                    self._release(size)
                raise
        else:
            self.reserved += size
        try:
            yield
        finally:
            self._release(size)

    def _release(self, size: int) -> None:
        self.reserved -= size
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            size, waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self.reserved += size
            waiter.set_result(None)

    def close(self) -> None:
        """The connection closed: let every waiter go (their replies are dropped)."""
        self.paused = False
        while self._waiters:
            size, waiter = self._waiters.popleft()
            if not waiter.done():
                self.reserved += size
                waiter.set_result(None)
