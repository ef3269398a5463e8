"""A connection to a segment store in the same process: requests go straight to a ``ConnectionHandler``.

A standalone runs its controller and its segment store on one event loop; over loopback TCP every controller
request would be encoded, written, read, decoded, answered, encoded again and decoded again. ``LocalConnection``
hands the request object to the same ``ConnectionHandler`` a TCP connection gets (same validation, same token
checks, same error replies, same table-update checks) and takes the reply object back, unencoded. Only replies the
handler writes as raw frames (segment reads, which it sends as views of the read index) are decoded from bytes.

It has what ``SegmentHelper`` uses of ``anabranch.client.connection.RawConnection``: ``request``, ``closed`` and
``close``. When the handler closes it (a container went away) every awaited request fails with
``ConnectionResetError``, as a lost TCP connection would, and the helper opens a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from anabranch.protocol.codec import CommandDecoder
from anabranch.protocol.commands import Reply, Request, WireCommand
from anabranch.segmentstore.handler import ConnectionHandler

if TYPE_CHECKING:
    from anabranch.segmentstore.server import WireServer

log = logging.getLogger(__name__)


class _Frames:
    """The handler's ``Output``: frames it writes itself (segment reads) are decoded back into replies."""

    def __init__(self, connection: LocalConnection) -> None:
        self._connection = connection
        self._decoder = CommandDecoder()

    def write(self, frame: bytes | bytearray | memoryview) -> None:
        for command in self._decoder.feed(bytes(frame)):
            self._connection.deliver(command)

    def close(self) -> None:
        self._connection.lost("the segment store closed the in-process connection")

    def pause_reading(self) -> None:
        """Nothing to pause: the caller awaits each request."""

    def resume_reading(self) -> None:
        """See ``pause_reading``."""


class _LocalHandler(ConnectionHandler):
    """A ``ConnectionHandler`` whose replies are handed over as objects instead of being encoded, and whose work for
    an awaited request runs in the awaiting task instead of a task of its own (``handle_inline``)."""

    def __init__(self, connection: LocalConnection, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connection = connection
        self._inline: Awaitable[None] | None = None
        self._capturing = False

    def reply(self, reply: Reply) -> None:
        if not self.closed:
            self._connection.deliver(reply)

    def handle_inline(self, request: Request) -> Awaitable[None] | None:
        """Handle ``request``; the work the handler would start as a task is returned instead, for the caller to
        await (None if it answered at once). The caller waits for the reply anyway, so a task per request and the
        wake-up that hands its reply over are saved: a standalone's controller makes every request this way."""
        self._capturing = True
        try:
            self.handle(request)
        finally:
            self._capturing = False
        work, self._inline = self._inline, None
        return work

    def _spawn(self, coro: Awaitable[None]) -> None:
        if self._capturing and self._inline is None:
            self._inline = coro
        else:
            super()._spawn(coro)


class LocalConnection:
    """One in-process connection to the segment store served by ``server`` (see the module docstring)."""

    def __init__(self, server: WireServer, serving: Callable[[], WireServer | None], *,
                 peer: str = "in-process") -> None:
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._server = server
        self._serving = serving
        self.closed = False
        self._handler = _LocalHandler(
            self, server.store, server.tables, _Frames(self), tail_read_timeout=server.tail_read_timeout,
            peer=peer, merges=server.merges, stats=server.stats, auth=server.auth)

    async def request(self, cmd: Request, *, timeout: float = 30.0) -> Reply:
        """Hand ``cmd`` to the handler and wait for the reply carrying its request id."""
        request_id: int = getattr(cmd, "request_id")  # noqa: B009 - every awaited request has one
        if self._serving() is not self._server:
            self.lost("the segment store stopped")
        if self.closed:
            raise ConnectionResetError("the in-process segment-store connection is closed")
        if request_id in self._pending:
            raise ValueError(f"request id {request_id} is already awaited on the in-process connection")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            work = self._handler.handle_inline(cmd)
            if work is None and future.done():  # answered at once (a read of a table held in memory): no timer
                return future.result()
            async with asyncio.timeout(timeout):
                if work is not None:
                    await work
                return await future
        except TimeoutError:
            raise TimeoutError(f"no reply from the in-process segment store within {timeout} s") from None
        finally:
            if self._pending.get(request_id) is future:
                del self._pending[request_id]

    def deliver(self, reply: WireCommand) -> None:
        future = self._pending.pop(getattr(reply, "request_id", -1), None)
        if future is not None and not future.done():
            future.set_result(reply)  # type: ignore[arg-type]
        elif future is None:
            log.debug("in-process reply %s matches no awaited request", type(reply).__name__)

    def lost(self, reason: str) -> None:
        """The handler closed this connection: fail every awaited request as a lost TCP connection would."""
        self.closed = True
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ConnectionResetError(reason))

    async def close(self) -> None:
        if not self.closed:
            self.lost("closed by its owner")
        await self._handler.aclose()


def connector(serving: Callable[[], WireServer | None]) -> Callable[[str, int], Awaitable[LocalConnection]]:
    """A ``SegmentHelper`` ``connect`` function opening in-process connections to the segment store ``serving()``
    returns (whatever the endpoint: a standalone has one segment store). While it returns None, or once it returns
    another server (the store stopped), connecting is refused and open connections are lost, as over TCP."""

    async def connect(host: str, port: int) -> LocalConnection:
        server = serving()
        if server is None:
            raise ConnectionRefusedError("the in-process segment store is not running")
        return LocalConnection(server, serving)

    return connect
