"""Byte streams: a one-segment stream used as an append-only file, without event framing.

``ByteStreamWriter`` appends raw bytes at the tail with ``ConditionalBlockEnd`` (expected offset
= the writer's offset), so two writers can never interleave bytes: the loser gets
``ConditionalCheckFailedError``. Writes are buffered and sent in chunks ≤ 8 MiB; ``flush()`` waits
for the acks. After a lost connection, ``SetupAppend`` tells which chunks are durable and only the
later ones are sent again (with the same expected offsets, so nothing is written twice).

``ByteStreamReader`` is file-like: ``read``/``readinto`` from the current position (waiting at the
tail until bytes arrive; ``b""`` only at the end of a sealed stream), ``seek``/``tell``, and the
head (truncation) and tail offsets.
"""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from anabranch.client.config import MAX_EVENT_SIZE
from anabranch.client.connection import RawConnection, next_request_id
from anabranch.client.errors import (
    ClientClosedError,
    ClientError,
    ConditionalCheckFailedError,
    ConnectionLostError,
    StreamSealedError,
    error_from_reply,
)
from anabranch.client.segment_reader import SegmentRouter, controller_resolver
from anabranch.client.segment_writer import NO_EVENT, ClientContext
from anabranch.errors import ConfigError
from anabranch.model.names import qualified_segment_name
from anabranch.protocol import commands as wire

log = logging.getLogger(__name__)
BUFFER_BYTES = 1024 * 1024
READ_LENGTH = 1024 * 1024
READ_TIMEOUT = 40.0


async def single_segment(context: ClientContext, scope: str, stream: str, *, head: bool) -> str:
    """The qualified name of a byte stream's only segment (the head segment, or the current one)."""
    if head:
        ids = list(await context.controller.get_head_segments(scope, stream))
    else:
        ids = [s.segment_id for s in await context.controller.get_current_segments(scope, stream)]
        if not ids:
            raise StreamSealedError(f"byte stream {scope}/{stream} is sealed")
    if len(ids) != 1:
        raise ConfigError(f"{scope}/{stream} has {len(ids)} segments; a byte stream needs exactly one "
                          "(create it with ScalingPolicy.fixed(1))")
    return qualified_segment_name(scope, stream, ids[0])


@dataclass(slots=True)
class _Chunk:
    data: bytes
    event_number: int
    expected_offset: int
    future: asyncio.Future[None]


class ByteStreamWriter:
    """Appends bytes to a byte stream at its tail. Open with ``await ByteStreamWriter.open(context, scope, stream)``."""

    def __init__(self, context: ClientContext, scope: str, stream: str, segment: str, offset: int) -> None:
        self.context = context
        self.scope = scope
        self.stream = stream
        self.segment = segment
        self.writer_id = uuid.uuid4()
        self._request_id = next_request_id()
        self._router = SegmentRouter(controller_resolver(context.controller), context.pool,
                                     policy=context.config.retry_policy, tokens=context.tokens)
        self._offset = offset
        self._buffer = bytearray()
        self._pending: deque[_Chunk] = deque()
        self._next_event = 1
        self._conn: RawConnection | None = None
        self._lost: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._closed = False

    @classmethod
    async def open(cls, context: ClientContext, scope: str, stream: str) -> ByteStreamWriter:
        segment = await single_segment(context, scope, stream, head=False)
        writer = cls(context, scope, stream, segment, 0)
        writer._offset = (await writer._info()).write_offset
        return writer

    async def __aenter__(self) -> ByteStreamWriter:
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        await self.close(flush=exc_type is None)

    def tell(self) -> int:
        """The offset the next written byte will have."""
        return self._offset + len(self._buffer)

    async def _info(self) -> wire.StreamSegmentInfo:
        reply = await self._router.request(self.segment, lambda rid: wire.GetStreamSegmentInfo(rid, self.segment, ""))
        if not isinstance(reply, wire.StreamSegmentInfo):
            raise error_from_reply(reply, f"reading the info of {self.segment}")
        return reply

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``; it is sent once 1 MiB is buffered or on ``flush()``."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ClientClosedError("the byte stream writer is closed")
        self._buffer += data
        if len(self._buffer) >= BUFFER_BYTES:
            await self._send_buffer()
        return len(data)

    async def _send_buffer(self) -> None:
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        loop = asyncio.get_running_loop()
        for start in range(0, len(data), MAX_EVENT_SIZE):
            chunk = _Chunk(data[start:start + MAX_EVENT_SIZE], self._next_event, self._offset, loop.create_future())
            self._next_event += 1
            self._offset += len(chunk.data)
            self._pending.append(chunk)
            if self._conn is not None and not self._conn.closed:
                self._send(self._conn, chunk)
        if self._conn is None or self._conn.closed:
            await self._connect()

    def _send(self, conn: RawConnection, chunk: _Chunk) -> None:
        conn.send(wire.ConditionalBlockEnd(self.writer_id, chunk.event_number, chunk.expected_offset, chunk.data,
                                           self._request_id))

    async def _connect(self) -> None:
        """SetupAppend on a (new) connection, retried under the client's retry policy; ack what is durable,
        resend the rest."""
        backoff = self.context.config.retry_policy.start()
        while True:
            try:
                reply = await self._setup()
                break
            except (ConnectionError, TimeoutError, OSError) as exc:
                if not getattr(exc, "retriable", True):
                    raise
                self._router.invalidate(self.segment)
                if not await backoff.wait():
                    raise ConnectionLostError(f"byte stream {self.segment}: no segment store answered after "
                                              f"{backoff.describe()}: {exc}") from exc
        if isinstance(reply, wire.SegmentIsSealed | wire.NoSuchSegment):
            self._fail_all(StreamSealedError(f"byte stream {self.scope}/{self.stream} is sealed"))
            raise self._error  # type: ignore[misc]
        if not isinstance(reply, wire.AppendSetup):
            raise error_from_reply(reply, f"SetupAppend on {self.segment}")
        conn = self._conn
        assert conn is not None
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lost = lost
        conn.on_close(lambda _exc: None if lost.done() else lost.set_result(None))
        if reply.last_event_number != NO_EVENT:
            self._ack(reply.last_event_number)
        for chunk in self._pending:
            self._send(conn, chunk)

    async def _setup(self) -> wire.Reply:
        conn = await self._router.connection_for(self.segment)
        assert isinstance(conn, RawConnection)
        conn.add_listener(self.writer_id, self._on_reply)
        token = await self.context.token(self.scope, self.stream)
        reply = await conn.request(wire.SetupAppend(next_request_id(), self.writer_id, self.segment, token),
                                   timeout=self.context.config.request_timeout)
        if isinstance(reply, wire.AppendSetup):
            conn.add_request_listener(self._request_id, self._on_reply)
            self._conn = conn
        else:
            conn.remove_listener(self.writer_id)
            self._router.invalidate(self.segment)
        return reply

    def _on_reply(self, reply: wire.Reply) -> None:
        if isinstance(reply, wire.DataAppended):
            self._ack(reply.event_number)
            return
        if isinstance(reply, wire.ConditionalCheckFailed):
            exc: ClientError = ConditionalCheckFailedError(
                f"{self.segment} is not at offset {self._expected(reply.event_number)}: another writer appended")
        elif isinstance(reply, wire.SegmentIsSealed | wire.NoSuchSegment):
            exc = StreamSealedError(f"byte stream {self.scope}/{self.stream} is sealed")
        else:
            exc = error_from_reply(reply, f"appending to {self.segment}")
        self._fail_all(exc)

    def _fail_all(self, exc: ClientError) -> None:
        self._error = exc
        while self._pending:
            chunk = self._pending.popleft()
            if not chunk.future.done():
                chunk.future.set_exception(exc)

    def _expected(self, event_number: int) -> int:
        return next((c.expected_offset for c in self._pending if c.event_number == event_number), -1)

    def _ack(self, event_number: int) -> None:
        while self._pending and self._pending[0].event_number <= event_number:
            chunk = self._pending.popleft()
            if not chunk.future.done():
                chunk.future.set_result(None)

    async def flush(self) -> None:
        """Send the buffer and wait until every byte written so far is durable (reconnecting under the client's
        retry policy; the pending bytes fail with ``ConnectionLostError`` once its budget is spent)."""
        if self._error is not None:
            raise self._error
        backoff = self.context.config.retry_policy.start()
        await self._send_buffer()
        while self._pending:
            waits: asyncio.Future[Any] = asyncio.gather(*(c.future for c in self._pending))
            lost = self._lost
            assert lost is not None
            done, _ = await asyncio.wait([waits, lost], timeout=self.context.config.request_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if waits in done:
                waits.result()
                break
            waits.cancel()
            log.debug("byte stream %s lost its connection; resending %d chunks", self.segment, len(self._pending))
            self._conn = None
            if not await backoff.wait():
                raise ConnectionLostError(f"byte stream {self.segment}: appends not acknowledged after "
                                          f"{backoff.describe()}")
            await self._connect()
        if self._error is not None:
            raise self._error

    async def seal(self) -> None:
        """Flush, then seal the segment: readers see the end of the stream after the last byte."""
        await self.flush()
        reply = await self._router.request(self.segment, lambda rid: wire.SealSegment(rid, self.segment, ""))
        if not isinstance(reply, wire.SegmentSealed | wire.SegmentIsSealed):
            raise error_from_reply(reply, f"sealing {self.segment}")

    async def truncate(self, offset: int) -> None:
        """Drop every byte before ``offset``."""
        reply = await self._router.request(
            self.segment, lambda rid: wire.TruncateSegment(rid, self.segment, offset, ""))
        if not isinstance(reply, wire.SegmentTruncated):
            raise error_from_reply(reply, f"truncating {self.segment} at {offset}")

    async def fetch_tail_offset(self) -> int:
        return (await self._info()).write_offset

    async def close(self, *, flush: bool = True) -> None:
        if self._closed:
            return
        try:
            if flush and self._error is None:
                await self.flush()
        finally:
            self._closed = True
            if self._conn is not None:
                self._conn.remove_listener(self.writer_id)
                self._conn.remove_request_listener(self._request_id)


class ByteStreamReader:
    """Reads a byte stream like a file. Open with ``await ByteStreamReader.open(context, scope, stream)``."""

    def __init__(self, context: ClientContext, segment: str, offset: int = 0) -> None:
        self.context = context
        self.segment = segment
        self._router = SegmentRouter(controller_resolver(context.controller), context.pool,
                                     policy=context.config.retry_policy, tokens=context.tokens)
        self._offset = offset
        self._buffer = b""
        self._closed = False

    @classmethod
    async def open(cls, context: ClientContext, scope: str, stream: str) -> ByteStreamReader:
        reader = cls(context, await single_segment(context, scope, stream, head=True))
        reader._offset = await reader.head_offset()
        return reader

    async def __aenter__(self) -> ByteStreamReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Drop buffered bytes; later reads raise ``ClientClosedError`` (the shared connections stay open)."""
        self._buffer = b""
        self._closed = True

    def tell(self) -> int:
        return self._offset

    async def _info(self) -> wire.StreamSegmentInfo:
        reply = await self._router.request(self.segment, lambda rid: wire.GetStreamSegmentInfo(rid, self.segment, ""))
        if not isinstance(reply, wire.StreamSegmentInfo):
            raise error_from_reply(reply, f"reading the info of {self.segment}")
        return reply

    async def head_offset(self) -> int:
        """The first readable offset (where the stream was truncated)."""
        return (await self._info()).start_offset

    async def tail_offset(self) -> int:
        """The offset just after the last written byte."""
        return (await self._info()).write_offset

    async def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._offset
        elif whence == io.SEEK_END:
            offset += await self.tail_offset()
        elif whence != io.SEEK_SET:
            raise ValueError(f"whence must be 0, 1 or 2, not {whence}")
        if offset < 0:
            raise ValueError("cannot seek before offset 0")
        self._offset = offset
        self._buffer = b""
        return offset

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (at least 1 unless the sealed end is reached); waits at the tail."""
        if self._closed:
            raise ClientClosedError("the byte stream reader is closed")
        if not self._buffer:
            self._buffer = await self._fetch(READ_LENGTH if size < 0 else max(size, 1))
        data = self._buffer if size < 0 else self._buffer[:size]
        self._buffer = self._buffer[len(data):]
        self._offset += len(data)
        return data

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        data = await self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    async def read_exactly(self, size: int) -> bytes:
        parts = []
        remaining = size
        while remaining > 0:
            data = await self.read(remaining)
            if not data:
                break
            parts.append(data)
            remaining -= len(data)
        return b"".join(parts)

    async def _fetch(self, size: int) -> bytes:
        offset = self._offset
        while True:
            reply = await self._router.request(
                self.segment, lambda rid: wire.ReadSegment(self.segment, offset, size, "", rid), timeout=READ_TIMEOUT)
            if isinstance(reply, wire.SegmentRead):
                if reply.data or reply.end_of_segment:
                    return bytes(reply.data)
                continue
            if isinstance(reply, wire.SegmentIsSealed):
                return b""
            raise error_from_reply(reply, f"reading {self.segment} at {offset}")
