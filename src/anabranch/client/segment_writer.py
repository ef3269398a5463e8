"""Appends to one segment: batching into append blocks, pipelining, acks, exactly-once reconnects.

``SegmentWriter`` owns one writer id on one segment. Events arrive already framed
(``[i32 0][i32 len][payload]``) and are grouped into blocks (≤ ``max_block_events`` events,
≤ ``max_block_bytes`` bytes, closed by size or after ``linger`` seconds); each block has one
future, never one per event. Up to ``max_inflight_blocks`` blocks are in flight; acks
(``DataAppended``) arrive in order and complete every block up to the acked event number.

Invariants: event numbers are per writer id, consecutive, starting at 1; a block keeps its
numbers for life, so after a reconnect ``SetupAppend`` tells the last durable number and only
later blocks are sent again (exactly once). Events larger than one append go through a
transient segment (CreateTransientSegment, ConditionalBlockEnd chunks, MergeSegments) after
every earlier block is acked, so order is kept. On ``SegmentIsSealed``/``NoSuchSegment`` the
writer stops sending and hands all unacked blocks, in order, to ``on_sealed``. Reconnecting follows the
client's retry policy; when its budget is spent the unacked blocks fail with a retriable error and the writer
stays usable (the next event reconnects). Only non-retriable errors (e.g. a refused token) stick.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anabranch.client.config import MAX_EVENT_SIZE, ClientConfig
from anabranch.client.connection import ConnectionPool, RawConnection, next_request_id
from anabranch.client.controller_client import ControllerClient
from anabranch.client.errors import (
    ClientClosedError,
    ClientError,
    ConditionalCheckFailedError,
    ConnectionLostError,
    error_from_reply,
)
from anabranch.client.tokens import TokenCache
from anabranch.errors import AnabranchError
from anabranch.protocol import commands as wire
from anabranch.protocol.codec import encode_append_block_end

log = logging.getLogger(__name__)
EVENT_HEADER = struct.Struct(">ii")
_pack_header = EVENT_HEADER.pack
NO_EVENT = wire.NULL_ATTRIBUTE_VALUE


def frame_event(payload: bytes) -> bytes:
    """The 8-byte Event header for ``payload`` (type 0, length)."""
    return EVENT_HEADER.pack(0, len(payload))


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


@dataclass
class ClientContext:
    """What every writer and reader of one client shares: settings, controller client, connection pool."""

    config: ClientConfig
    controller: ControllerClient
    pool: ConnectionPool
    tokens: TokenCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.tokens = TokenCache(self.controller.get_delegation_token, enabled=self.config.authorization is not None)

    async def token(self, scope: str, stream: str, *, refresh: bool = False) -> str:
        """The delegation token for a stream ("" without credentials; cached, renewed before it expires)."""
        return await self.tokens.get(scope, stream, refresh=refresh)


class Block:
    """A batch of framed events with one future; ``keys`` keep each event's routing key (for re-routing)."""

    __slots__ = ("count", "first_event", "future", "keys", "large", "last_event", "parts", "size")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.parts: list[bytes] = []
        self.keys: list[str | None] = []
        self.size = 0
        self.count = 0
        self.first_event = 0
        self.last_event = 0
        self.large = False
        self.future: asyncio.Future[None] = loop.create_future()
        self.future.add_done_callback(_consume)

    def payloads(self) -> list[bytes]:
        """The events' payloads (without their headers), in order."""
        return self.parts[1::2]


class SegmentWriter:
    """Writes framed events to one segment; see the module docstring for the protocol it follows."""

    def __init__(self, context: ClientContext, scope: str, stream: str, segment_id: int, segment_name: str,
                 on_sealed: Callable[[SegmentWriter], None] | None = None) -> None:
        self.context = context
        self.config = context.config
        self.scope = scope
        self.stream = stream
        self.segment_id = segment_id
        self.segment_name = segment_name
        self.writer_id = uuid.uuid4()
        self._on_sealed = on_sealed
        self._loop = asyncio.get_running_loop()
        self._open: Block | None = None
        self._ready: deque[Block] = deque()
        self._inflight: deque[Block] = deque()
        self._next_event = 1
        self._conn: RawConnection | None = None
        self._request_id = next_request_id()
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._linger_handle: asyncio.TimerHandle | None = None
        self.sealed = False
        self.error: BaseException | None = None
        self._closed = False
        self.write_offset = -1
        self.backlogged = False
        self._max_block_bytes = self.config.max_block_bytes
        self._max_block_events = self.config.max_block_events
        self._linger = self.config.linger
        self._task = asyncio.create_task(self._run(), name=f"segment-writer {segment_name}")

    # ---- adding events (hot path, synchronous) ----

    def add(self, payload: bytes, key: str | None) -> asyncio.Future[None]:
        """Queue one event (framed here); returns the future of the block that holds it."""
        size = len(payload) + 8
        block = self._open
        if block is None or block.size + size > self._max_block_bytes or size > MAX_EVENT_SIZE + 8:
            if self.error is not None:
                raise self.error
            if size > MAX_EVENT_SIZE + 8:
                return self._add_large(payload, key)
            if block is not None:
                self._close_open()
            block = self._open = Block(self._loop)
            self._linger_handle = self._loop.call_later(self._linger, self._on_linger)
        block.parts += (_pack_header(0, size - 8), payload)
        block.keys.append(key)
        block.size += size
        block.count += 1
        if block.count >= self._max_block_events:
            self._close_open()
        return block.future

    def _add_large(self, payload: bytes, key: str | None) -> asyncio.Future[None]:
        if self._open is not None:
            self._close_open()
        block = Block(self._loop)
        block.parts += (_pack_header(0, len(payload)), payload)
        block.keys.append(key)
        block.size, block.count, block.large = 8 + len(payload), 1, True
        self._number(block)
        self._ready.append(block)
        self._wakeup.set()
        return block.future

    def _number(self, block: Block) -> None:
        block.first_event = self._next_event
        block.last_event = self._next_event + block.count - 1
        self._next_event += block.count

    def _on_linger(self) -> None:
        self._linger_handle = None
        if self._open is not None:
            self._close_open()

    def _close_open(self) -> None:
        block = self._open
        if block is None:
            return
        self._open = None
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        self._number(block)
        self._ready.append(block)
        if len(self._ready) > 2 * self.config.max_inflight_blocks:
            self._space.clear()
            self.backlogged = True
        self._wakeup.set()

    async def wait_for_space(self) -> None:
        await self._space.wait()

    def flush_nowait(self) -> list[asyncio.Future[None]]:
        """Close the open block now; returns the futures of every unacked block."""
        self._close_open()
        return [b.future for b in (*self._inflight, *self._ready)]

    async def flush(self) -> None:
        futures = self.flush_nowait()
        if futures:
            await asyncio.gather(*futures)
        if self.error is not None:
            raise self.error

    def take_unacked(self) -> list[Block]:
        """All events not yet acked, in order (for re-routing after a seal); the writer keeps nothing."""
        if self._open is not None:
            self._close_open()
        blocks = [*self._inflight, *self._ready]
        self._inflight.clear()
        self._ready.clear()
        self._release_space()
        return blocks

    # ---- the sender task ----

    async def _run(self) -> None:
        while not self._closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.sealed:
                if self._on_sealed is not None:
                    self._on_sealed(self)
                return
            if self._closed:
                return
            if not (self._ready or self._inflight):
                continue
            try:
                if self._conn is None or self._conn.closed:
                    try:
                        await self._connect()
                    except AnabranchError as exc:  # the retry budget is spent, or a permanent error
                        if not exc.retriable:
                            self._fail(exc)
                            return
                        self._fail_pending(exc)
                    continue
                await self._send_ready()
            except asyncio.CancelledError:
                raise
            except (ConnectionError, TimeoutError, OSError) as exc:
                log.debug("writer %s lost its connection: %r", self.writer_id, exc)
                self._drop_connection()
            except AnabranchError as exc:
                self._fail(exc)
                return
            except Exception as exc:
                log.exception("segment writer for %s failed", self.segment_name)
                self._fail(ClientError(f"writer for {self.segment_name} failed: {exc!r}"))
                return

    async def _send_ready(self) -> None:
        conn = self._conn
        assert conn is not None
        while self._ready and len(self._inflight) < self.config.max_inflight_blocks:
            block = self._ready[0]
            if block.large:
                if self._inflight:
                    return
                self._ready.popleft()
                self._inflight.append(block)
                await self._write_large(conn, block)
                continue
            self._ready.popleft()
            self._inflight.append(block)
            conn.writelines(encode_append_block_end(
                self.writer_id, block.size, block.parts, block.size, block.count, block.last_event, self._request_id,
            ))
        if len(self._ready) <= self.config.max_inflight_blocks:
            self._release_space()
        await conn.drain()

    async def _connect(self) -> None:
        """(Re)connect, SetupAppend, ack what the segment already has, and queue the rest for resending.

        Retries under the client's retry policy; when its budget is spent, the pending events fail with a
        retriable error and the writer stays usable: the next event starts connecting again.
        """
        backoff = self.config.retry_policy.start()
        refresh_token = False
        last: BaseException | None = None
        while not self._closed:
            try:
                endpoint = await self.context.controller.get_uri(self.scope, self.stream, self.segment_id)
                conn = await self.context.pool.get(endpoint.host, endpoint.port)
                token = await self.context.token(self.scope, self.stream, refresh=refresh_token)
                conn.add_listener(self.writer_id, self._on_reply)
                reply = await conn.request(
                    wire.SetupAppend(self._request_id, self.writer_id, self.segment_name, token),
                    timeout=self.config.request_timeout,
                )
            except (ConnectionError, TimeoutError, OSError) as exc:
                if not getattr(exc, "retriable", True):
                    raise
                last = exc
                log.debug("connecting writer %s to %s failed: %r", self.writer_id, self.segment_name, exc)
            except AnabranchError as exc:
                if not exc.retriable:
                    raise
                last = exc
                log.debug("connecting writer %s to %s failed: %r", self.writer_id, self.segment_name, exc)
            else:
                if isinstance(reply, wire.AppendSetup):
                    self._conn = conn
                    conn.add_request_listener(self._request_id, self._on_reply)
                    conn.on_close(functools.partial(self._on_close, conn))
                    self._resume(reply.last_event_number)
                    return
                conn.remove_listener(self.writer_id)
                if isinstance(reply, wire.SegmentIsSealed | wire.NoSuchSegment):
                    self._mark_sealed()
                    return
                if isinstance(reply, wire.AuthTokenCheckFailed):
                    if refresh_token:
                        raise error_from_reply(reply, f"SetupAppend on {self.segment_name}")
                    refresh_token = True
                    continue
                error = error_from_reply(reply, f"SetupAppend on {self.segment_name}")
                if not error.retriable:
                    raise error
                last = error
            if not await backoff.wait():
                raise ConnectionLostError(f"cannot reach the segment store for {self.segment_name} after "
                                          f"{backoff.describe()}: {last}")
            log.debug("retrying SetupAppend of %s (attempt %d)", self.segment_name, backoff.attempts + 1)

    def _resume(self, last_event_number: int) -> None:
        if last_event_number != NO_EVENT:
            self._ack(last_event_number, -1)
        while self._inflight:
            self._ready.appendleft(self._inflight.pop())
        self._wakeup.set()

    def _on_close(self, conn: RawConnection, _reason: BaseException | None = None) -> None:
        if conn is self._conn:
            self._conn = None
            if self._inflight or self._ready:
                self._wakeup.set()

    # ---- replies ----

    def _on_reply(self, reply: wire.Reply) -> None:
        if isinstance(reply, wire.DataAppended):
            self._ack(reply.event_number, reply.current_segment_write_offset)
        elif isinstance(reply, wire.SegmentIsSealed | wire.NoSuchSegment):
            self._mark_sealed()
        elif isinstance(reply, wire.WrongHost | wire.InvalidEventNumber):
            self._drop_connection()
        elif isinstance(reply, wire.ConditionalCheckFailed):
            self._fail(ConditionalCheckFailedError(f"conditional append to {self.segment_name} failed"))
        elif isinstance(reply, wire.AuthTokenCheckFailed):
            self._drop_connection()
        elif isinstance(reply, wire.ErrorMessage):
            self._fail_pending(error_from_reply(reply, f"appending to {self.segment_name}"))
        else:
            log.debug("writer %s ignores %r", self.writer_id, reply)

    def _ack(self, event_number: int, offset: int) -> None:
        inflight = self._inflight
        while inflight and inflight[0].last_event <= event_number:
            block = inflight.popleft()
            if not block.future.done():
                block.future.set_result(None)
        if offset >= 0:
            self.write_offset = offset
        self._wakeup.set()

    def _mark_sealed(self) -> None:
        if not self.sealed:
            self.sealed = True
            self._wakeup.set()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.remove_listener(self.writer_id)
        self._wakeup.set()

    def _fail(self, exc: BaseException) -> None:
        """A permanent failure: pending events fail, and so does every later one."""
        if self.error is None:
            self.error = exc
        self._fail_pending(exc)

    def _fail_pending(self, exc: BaseException) -> None:
        """Fail the events not yet acked; later events start a new connection (a retriable failure)."""
        self._drop_connection()
        self._wakeup.clear()
        for block in (*self._inflight, *self._ready, *([self._open] if self._open else [])):
            if not block.future.done():
                block.future.set_exception(exc)
        self._inflight.clear()
        self._ready.clear()
        self._open = None
        self._release_space()

    def _release_space(self) -> None:
        self.backlogged = False
        self._space.set()

    # ---- events larger than one append ----

    async def _write_large(self, conn: RawConnection, block: Block) -> None:
        """Transient segment, ConditionalBlockEnd per 8 MiB chunk, then MergeSegments into this segment."""
        data = b"".join(block.parts)
        token = await self.context.token(self.scope, self.stream)
        transient_writer = uuid.uuid4()
        timeout = self.config.request_timeout
        reply = await conn.request(
            wire.CreateTransientSegment(next_request_id(), transient_writer, self.segment_name, token), timeout=timeout)
        if isinstance(reply, wire.SegmentIsSealed | wire.NoSuchSegment):
            self._inflight.remove(block)
            self._ready.appendleft(block)
            self._mark_sealed()
            return
        if not isinstance(reply, wire.SegmentCreated):
            raise error_from_reply(reply, f"creating a transient segment for {self.segment_name}")
        transient = reply.segment
        setup = await conn.request(wire.SetupAppend(next_request_id(), transient_writer, transient, token),
                                   timeout=timeout)
        if not isinstance(setup, wire.AppendSetup):
            raise error_from_reply(setup, f"SetupAppend on {transient}")
        acked: asyncio.Queue[wire.Reply] = asyncio.Queue()
        conn.add_listener(transient_writer, acked.put_nowait)
        try:
            for number, start in enumerate(range(0, len(data), MAX_EVENT_SIZE)):
                chunk = data[start:start + MAX_EVENT_SIZE]
                conn.send(wire.ConditionalBlockEnd(transient_writer, number, start, chunk, next_request_id()))
                async with asyncio.timeout(timeout):
                    ack = await acked.get()
                if not isinstance(ack, wire.DataAppended):
                    raise error_from_reply(ack, f"writing a large event to {transient}")
        finally:
            conn.remove_listener(transient_writer)
        merged = await conn.request(wire.MergeSegments(next_request_id(), self.segment_name, transient, token),
                                    timeout=timeout)
        if isinstance(merged, wire.SegmentIsSealed | wire.NoSuchSegment) and merged.segment == self.segment_name:
            self._inflight.remove(block)
            self._ready.appendleft(block)
            self._mark_sealed()
            return
        if not isinstance(merged, wire.SegmentsMerged):
            raise error_from_reply(merged, f"merging a large event into {self.segment_name}")
        self._inflight.remove(block)
        self.write_offset = merged.new_target_write_offset
        block.future.set_result(None)

    # ---- lifecycle ----

    async def close(self) -> None:
        """Stop sending (without flushing) and detach from the connection."""
        self._closed = True
        self._wakeup.set()
        if self._linger_handle is not None:
            self._linger_handle.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._conn is not None:
            self._conn.remove_listener(self.writer_id)
            self._conn.remove_request_listener(self._request_id)
        self._fail(ClientClosedError(f"writer for {self.segment_name} was closed"))

    def statistics(self) -> dict[str, Any]:
        return {"segment": self.segment_name, "inflight_blocks": len(self._inflight), "ready_blocks": len(self._ready),
                "next_event": self._next_event, "sealed": self.sealed}
