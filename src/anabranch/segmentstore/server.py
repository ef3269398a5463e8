"""The segment store's TCP server: asyncio Protocols feeding ServerConnection → ConnectionHandler.

One ``WireProtocol`` per connection, an ``asyncio.BufferedProtocol``: the socket reads straight into the
buffers of the sans-IO ServerConnection (a large frame, e.g. an append block, into a buffer of its own, so its
bytes are copied once, by the kernel, and kept as they are down to the Tier-1 ``writev`` and the read index);
``buffer_updated`` decodes the frames and hands the items to the connection's handler, which writes replies
to the transport. Bad input (ProtocolError) is logged once at WARNING with the peer address and closes that
connection only; reading pauses while too many append bytes wait for the store, while too many requests run,
and while the send buffer is above its high-water mark (``reply_budget.HIGH_WATER``, resumed below
``LOW_WATER``): a client that does not read its replies holds a bounded amount of the server's memory.
With an ``ssl.SSLContext`` every connection is TLS (asyncio does the handshake before the protocol sees the
connection; a client that does not speak TLS is dropped during the handshake).
A plaintext server closes at once a connection whose first bytes are a TLS ClientHello (no wire command starts
with a TLS record header), logging why, instead of waiting for the rest of a bogus frame.
Knows nothing about segments beyond passing them on.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from anabranch.protocol.server_connection import BadInputError, ServerConnection
from anabranch.segmentstore.handler import ConnectionHandler
from anabranch.segmentstore.handler_merges import MergeHistory
from anabranch.segmentstore.reply_budget import HIGH_WATER, LOW_WATER

if TYPE_CHECKING:
    from anabranch.auth.wire_auth import WireAuthorizer
    from anabranch.segmentstore.stats import SegmentStatsRecorder
    from anabranch.segmentstore.store import SegmentStore
    from anabranch.segmentstore.tables import TableStore

log = logging.getLogger(__name__)

_TLS_HANDSHAKE_RECORD = b"\x16\x03"
"""The first bytes of a TLS ClientHello; a wire command's first byte (its type) is never 0x16."""


class _TransportOutput:
    """The handler's Output over an asyncio transport.

    Replies written during one event-loop iteration (e.g. the acks of one group commit) leave in one write;
    once ``FLUSH_BYTES`` are pending they go to the transport at once, so the transport's buffer (and its
    high-water mark, which pauses the connection) sees large replies as soon as they are made.
    """

    FLUSH_BYTES = 64 * 1024

    __slots__ = ("_loop", "_pending", "_pending_bytes", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes | bytearray | memoryview] = []
        self._pending_bytes = 0

    def write(self, frame: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if self._pending_bytes >= self.FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            frames, self._pending, self._pending_bytes = self._pending, [], 0
            if not self._transport.is_closing():
                self._transport.writelines(frames)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def pause_reading(self) -> None:
        if not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if not self._transport.is_closing():
            self._transport.resume_reading()


class WireProtocol(asyncio.BufferedProtocol):
    """One client connection."""

    def __init__(self, server: WireServer) -> None:
        self._server = server
        self._connection = ServerConnection()
        self._handler: ConnectionHandler | None = None
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._first_data = True
        self._buffer = memoryview(b"")
        """The first buffer given to the transport (its first two bytes are the TLS check's)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._handler = ConnectionHandler(
            self._server.store,
            self._server.tables,
            _TransportOutput(transport),
            remove_writer=self._connection.remove_writer,
            tail_read_timeout=self._server.tail_read_timeout,
            peer=self._peer,
            merges=self._server.merges,
            stats=self._server.stats,
            auth=self._server.auth,
        )
        self._server.connections.add(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        buffer = self._connection.get_buffer()
        if self._first_data:
            self._buffer = buffer
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        handler = self._handler
        if handler is None or handler.closed:
            return
        if self._first_data:
            self._first_data = False
            first, self._buffer = self._buffer[: min(nbytes, 2)], memoryview(b"")
            if first == _TLS_HANDSHAKE_RECORD:
                handler.fail("the client speaks TLS to this plaintext port (serve TLS with --tls-cert/--tls-key)")
                return
        try:
            items = self._connection.buffer_updated(nbytes)
        except BadInputError as exc:
            handler.handle_all(exc.items_before)
            handler.fail(f"bad input: {exc}")
            return
        handler.handle_all(items)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.replies_backed_up(True)

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.replies_backed_up(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if self._handler is not None:
            self._server.track(self._handler.aclose())

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class WireServer:
    """Listens on ``host:port`` and serves every connection with the shared store and table store."""

    def __init__(self, store: SegmentStore, tables: TableStore, *, tail_read_timeout: float = 20.0,
                 stats: SegmentStatsRecorder | None = None, auth: WireAuthorizer | None = None) -> None:
        self.store = store
        self.auth = auth
        """Checks every request's delegation token (None: no checks at all, for embedded use and tests)."""
        self.tables = tables
        self.stats = stats
        self.tail_read_timeout = tail_read_timeout
        self.connections: set[WireProtocol] = set()
        self.merges = MergeHistory()
        self._server: asyncio.Server | None = None
        self._cleanups: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None) -> int:
        """Start listening, over TLS if ``ssl_context`` is given; returns the bound port (``port`` 0 picks a
        free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: WireProtocol(self), host, port, backlog=1024,
                                                ssl=ssl_context)
        bound = int(self._server.sockets[0].getsockname()[1])
        log.debug("wire server listening on %s:%d%s", host, bound, " (TLS)" if ssl_context is not None else "")
        return bound

    def track(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a connection's cleanup in the background; ``stop`` waits for it."""
        task = asyncio.ensure_future(coro)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def stop(self) -> None:
        """Stop accepting, close every connection and wait for their cleanup."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._cleanups:
            await asyncio.wait(list(self._cleanups), timeout=10)
