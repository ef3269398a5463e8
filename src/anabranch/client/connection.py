"""Client-side connections to a segment store: one asyncio TCP connection speaking the wire protocol.

``RawConnection`` performs the Hello handshake, then a reader task decodes replies and routes each
one: to the future of the ``request()`` awaiting its request id, else to the listener of its writer
id (appends), else to a listener of its request id (long-lived flows), else it is dropped (logged
at debug). When the connection ends, pending requests fail with :class:`ConnectionFailedError` and
every ``on_close`` callback runs exactly once. Writes go straight to the transport; ``drain()`` applies
backpressure. ``ConnectionPool`` shares one live
connection per endpoint. Given an ``ssl.SSLContext`` a connection is TLS (handshake first, certificate and
host name checked by the context; the TLS layer changes nothing above it). This module knows the codec, not
what the replies mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import uuid
from collections.abc import Callable, Iterable

from anabranch.client.errors import ClientClosedError
from anabranch.errors import ConnectionFailedError, ProtocolError
from anabranch.protocol.codec import CommandDecoder, encode
from anabranch.protocol.commands import (
    OLDEST_COMPATIBLE_VERSION,
    WIRE_VERSION,
    Hello,
    KeepAlive,
    Reply,
    Request,
    WireCommand,
)

log = logging.getLogger(__name__)

ReplyCallback = Callable[[Reply], None]
CloseCallback = Callable[[BaseException | None], None]

READ_SIZE = 256 * 1024
_request_ids = itertools.count(1)


def next_request_id() -> int:
    """A process-wide unique request id (as the Rust client does)."""
    return next(_request_ids)


class ReplyTimeoutError(ConnectionFailedError, TimeoutError):
    """No reply to a request arrived in time; the connection may be stuck (retriable)."""


class PoolClosedError(ConnectionFailedError, ClientClosedError):
    """The pool (and the ``StreamManager`` owning it) was closed: not retriable."""

    retriable = False


class TlsVerificationError(ConnectionFailedError):
    """The segment store's certificate is not trusted or not valid for its host name (not retriable)."""

    retriable = False


class RawConnection:
    """One handshaken connection to a segment store; create it with :meth:`connect`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        decoder: CommandDecoder,
        peer: tuple[str, int],
    ) -> None:
        self.peer = peer
        self._reader = reader
        self._writer = writer
        self._decoder = decoder
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._listeners: dict[uuid.UUID, ReplyCallback] = {}
        self._request_listeners: dict[int, ReplyCallback] = {}
        self._close_callbacks: list[CloseCallback] = []
        self._close_reason: BaseException | None = None
        self.closed = False
        self._reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, host: str, port: int, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None,
                      server_hostname: str | None = None) -> RawConnection:
        """Open TCP (TLS with ``ssl_context``, checking the certificate against ``server_hostname``, default
        ``host``), exchange Hello (versions must overlap) and start reading replies."""
        try:
            async with asyncio.timeout(timeout):
                return await cls._handshake(host, port, ssl_context, server_hostname)
        except TimeoutError:
            raise ConnectionFailedError(f"no Hello from segment store {host}:{port} within {timeout} s") from None

    @classmethod
    async def _handshake(cls, host: str, port: int, ssl_context: ssl.SSLContext | None,
                         server_hostname: str | None) -> RawConnection:
        try:
            if ssl_context is None:
                reader, writer = await asyncio.open_connection(host, port)
            else:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl_context, server_hostname=server_hostname or host)
        except ssl.SSLCertVerificationError as exc:
            raise TlsVerificationError(
                f"segment store {host}:{port} presented a certificate this client does not accept: "
                f"{exc.verify_message or exc} (check the trust store and that the certificate names "
                f"{server_hostname or host!r})"
            ) from exc
        except ssl.SSLError as exc:
            raise ConnectionFailedError(
                f"TLS handshake with segment store {host}:{port} failed: {exc.reason or exc} "
                "(does it serve TLS, and does the trust store hold the CA that signed its certificate?)"
            ) from exc
        except OSError as exc:
            hint = " during the TLS handshake (does it serve TLS?)" if ssl_context is not None else ""
            raise ConnectionFailedError(
                f"cannot connect to segment store {host}:{port}{hint}: {str(exc) or type(exc).__name__}"
            ) from exc
        try:
            writer.write(encode(Hello(WIRE_VERSION, OLDEST_COMPATIBLE_VERSION)))
            decoder = CommandDecoder()
            received: list[WireCommand] = []
            while not received:
                data = await reader.read(READ_SIZE)
                if not data:
                    raise ConnectionFailedError(f"segment store {host}:{port} closed the connection before Hello")
                received = decoder.feed(data)
            hello = received[0]
            if not isinstance(hello, Hello):
                raise ConnectionFailedError(f"segment store {host}:{port} sent {hello!r} before Hello")
            if hello.low_version > WIRE_VERSION or hello.high_version < OLDEST_COMPATIBLE_VERSION:
                raise ConnectionFailedError(
                    f"segment store {host}:{port} speaks wire versions {hello.low_version}..{hello.high_version}, "
                    f"this client {OLDEST_COMPATIBLE_VERSION}..{WIRE_VERSION}"
                )
        except BaseException as exc:
            writer.close()
            if isinstance(exc, (OSError, ProtocolError)):
                raise ConnectionFailedError(f"handshake with segment store {host}:{port} failed: {exc}") from exc
            raise
        conn = cls(reader, writer, decoder, (host, port))
        for cmd in received[1:]:
            conn._dispatch(cmd)
        conn._reader_task = asyncio.get_running_loop().create_task(conn._read_loop(), name=f"wire-reader-{host}:{port}")
        return conn

    # --- sending ---------------------------------------------------------------------------

    def send(self, cmd: WireCommand) -> None:
        self.write(encode(cmd))

    def write(self, data: bytes | memoryview) -> None:
        self._check_open()
        self._writer.write(data)

    def writelines(self, bufs: Iterable[bytes | memoryview]) -> None:
        self._check_open()
        self._writer.writelines(bufs)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        self._check_open()
        try:
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:
            raise ConnectionFailedError(f"connection to {self._endpoint()} lost while writing: {exc}") from exc

    async def request(self, cmd: Request, *, timeout: float = 30.0) -> Reply:
        """Send ``cmd`` and wait for the reply carrying its request id."""
        request_id: int = getattr(cmd, "request_id")  # noqa: B009 - every awaited request has one
        if request_id in self._pending:
            raise ValueError(f"request id {request_id} is already awaited on {self._endpoint()}")
        self._check_open()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self.send(cmd)
            # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancellation that races with the reply,
            # which kept a program that left a reader open from exiting until the next long-poll reply.
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise ReplyTimeoutError(
                f"no reply to {type(cmd).__name__} (request {request_id}) from {self._endpoint()} within {timeout} s"
            ) from None
        finally:
            if self._pending.get(request_id) is future:
                del self._pending[request_id]

    # --- routing of replies ----------------------------------------------------------------

    def add_listener(self, writer_id: uuid.UUID, callback: ReplyCallback) -> None:
        """Route replies carrying ``writer_id`` (and no awaited request id) to ``callback``."""
        self._listeners[writer_id] = callback

    def remove_listener(self, writer_id: uuid.UUID) -> None:
        self._listeners.pop(writer_id, None)

    def add_request_listener(self, request_id: int, callback: ReplyCallback) -> None:
        """Route unsolicited replies carrying ``request_id`` (and no listened writer id) to ``callback``."""
        self._request_listeners[request_id] = callback

    def remove_request_listener(self, request_id: int) -> None:
        self._request_listeners.pop(request_id, None)

    def on_close(self, callback: CloseCallback) -> None:
        """Call ``callback(reason)`` once when the connection ends (at once if it already has)."""
        if self.closed:
            self._run_close_callback(callback)
        else:
            self._close_callbacks.append(callback)

    def _dispatch(self, cmd: WireCommand) -> None:
        request_id = getattr(cmd, "request_id", None)
        if request_id is not None:
            future = self._pending.pop(request_id, None)
            if future is not None:
                if not future.done():
                    future.set_result(cmd)  # type: ignore[arg-type]
                return
        if isinstance(cmd, (KeepAlive, Hello)):
            return
        writer_id = getattr(cmd, "writer_id", None)
        callback = self._listeners.get(writer_id) if writer_id is not None else None
        if callback is None and request_id is not None:
            callback = self._request_listeners.get(request_id)
        if callback is None:
            log.debug("%s: dropping unmatched reply %r", self._endpoint(), cmd)
            return
        try:
            callback(cmd)  # type: ignore[arg-type]
        except Exception:
            log.exception("%s: reply listener failed on %r", self._endpoint(), cmd)

    async def _read_loop(self) -> None:
        reason: BaseException | None = None
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    break
                for cmd in self._decoder.feed(data):
                    self._dispatch(cmd)
        except asyncio.CancelledError:
            pass
        except (OSError, ProtocolError) as exc:
            log.debug("%s: connection lost: %s", self._endpoint(), exc)
            reason = exc
        self._shutdown(reason)

    # --- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection; pending requests fail, ``on_close`` callbacks run."""
        self._shutdown(None)
        task = self._reader_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    def _shutdown(self, reason: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        self._close_reason = reason
        self._writer.close()
        error = ConnectionFailedError(
            f"connection to {self._endpoint()} closed" + (f": {reason}" if reason is not None else "")
        )
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            self._run_close_callback(callback)

    def _run_close_callback(self, callback: CloseCallback) -> None:
        try:
            callback(self._close_reason)
        except Exception:
            log.exception("%s: on_close callback failed", self._endpoint())

    def _check_open(self) -> None:
        if self.closed:
            raise ConnectionFailedError(f"connection to {self._endpoint()} is closed")

    def _endpoint(self) -> str:
        return f"segment store {self.peer[0]}:{self.peer[1]}"


class ConnectionPool:
    """One shared live connection per segment-store endpoint; concurrent callers share one connect."""

    def __init__(self, *, connect_timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.connect_timeout = connect_timeout
        self.ssl_context = ssl_context
        self._connections: dict[tuple[str, int], RawConnection] = {}
        self._connecting: dict[tuple[str, int], asyncio.Task[RawConnection]] = {}
        self._closed = False

    async def get(self, host: str, port: int) -> RawConnection:
        """The live connection to ``host:port``, connecting (once, shared) if there is none."""
        if self._closed:
            raise PoolClosedError("the connection pool is closed (its StreamManager was closed)")
        key = (host, port)
        conn = self._connections.get(key)
        if conn is not None and not conn.closed:
            return conn
        task = self._connecting.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                RawConnection.connect(host, port, timeout=self.connect_timeout, ssl_context=self.ssl_context),
                name=f"wire-connect-{host}:{port}",
            )
            self._connecting[key] = task
            task.add_done_callback(lambda done: self._connected(key, done))
        return await asyncio.shield(task)

    def _connected(self, key: tuple[str, int], task: asyncio.Task[RawConnection]) -> None:
        if self._connecting.get(key) is task:
            del self._connecting[key]
        if task.cancelled() or task.exception() is not None:
            return
        if not self._closed:
            self._connections[key] = task.result()

    async def close(self) -> None:
        """Close every connection; later ``get`` calls fail."""
        self._closed = True
        tasks = list(self._connecting.values())
        for task in tasks:
            task.cancel()
        connections = list(self._connections.values())
        self._connections = {}
        for task in tasks:
            with contextlib.suppress(BaseException):
                connections.append(await task)
        for conn in connections:
            await conn.close()
