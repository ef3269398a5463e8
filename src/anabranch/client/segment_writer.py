"""Appends to one segment: the I/O around the append protocol's rules (``protocol/client_appends.py``).

``SegmentWriter`` owns one writer id on one segment and drives a :class:`ClientAppends`, which holds the
rules: how events become append blocks (≤ ``max_block_events`` events, ≤ ``max_block_bytes`` bytes), how
they are numbered, which blocks a ``DataAppended`` completes, what to resend after ``AppendSetup`` and
what each error reply means. This module adds what needs I/O and time: adaptive batching, one future per block
(never one per event), the sender task keeping up to ``max_inflight_blocks`` blocks in flight, backpressure,
and reconnecting.

Adaptive batching: a block opened while the in-flight window has room is sent as soon as the application yields
to the event loop, so a lone event does not wait; a block opened while ``max_inflight_blocks`` blocks await their
acks fills until it is full, until an ack makes room, or until ``linger`` seconds have passed, whichever comes
first. Under a flood, blocks therefore grow with the event rate times the ack latency (up to the block limits); at
a low rate every event goes out at once.

Events larger than one append go through a transient segment (CreateTransientSegment, ConditionalBlockEnd
chunks, MergeSegments) after every earlier block is acked, so order is kept. On ``SegmentIsSealed``/
``NoSuchSegment`` the writer stops sending and hands all unacked blocks, in order, to ``on_sealed``.
Reconnecting follows the client's retry policy; when its budget is spent the unacked blocks fail with a
retriable error and the writer stays usable (the next event reconnects). Only non-retriable errors (e.g. a
refused token) stick.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Iterable
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
from anabranch.protocol.client_appends import NO_EVENT, ClientAppends, OutgoingBlock, ReplyOutcome, reply_outcome

log = logging.getLogger(__name__)
Block = OutgoingBlock[asyncio.Future[None]]
"""An append block whose handle is the future of its events."""
__all__ = ["NO_EVENT", "Block", "ClientContext", "SegmentWriter"]


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
        self.tokens = TokenCache(self.controller.get_delegation_token, enabled=self.config.authorization is not None,
                                 clock=self.config.clock.time)

    async def token(self, scope: str, stream: str, *, refresh: bool = False) -> str:
        """The delegation token for a stream ("" without credentials; cached, renewed before it expires)."""
        return await self.tokens.get(scope, stream, refresh=refresh)


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
        self._request_id = next_request_id()
        self._appends: ClientAppends[asyncio.Future[None]] = ClientAppends(
            self.writer_id, self._request_id, open_block=self._open_block, block_ready=self._block_ready,
            max_block_bytes=self.config.max_block_bytes, max_block_events=self.config.max_block_events,
            max_event_size=MAX_EVENT_SIZE, max_inflight_blocks=self.config.max_inflight_blocks,
        )
        self.add: Callable[[bytes, str | None], asyncio.Future[None]] = self._appends.add
        """Queue one event (framed by the protocol code); returns the future of the block that holds it."""
        self.add_many: Callable[[Iterable[bytes], str | None], list[asyncio.Future[None]]] = self._appends.add_many
        """Queue several events with one routing key; returns the futures of the blocks that hold them."""
        self.queued: asyncio.Future[asyncio.Future[None]] = self._loop.create_future()
        """Already done, with the future of the block last opened as its result: what ``await write_event`` gives,
        without a coroutine per event (one per block)."""
        self._conn: RawConnection | None = None
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._linger_handle: asyncio.TimerHandle | None = None
        self.sealed = False
        self.error: BaseException | None = None
        self._closed = False
        self.write_offset = -1
        self.backlogged = False
        self.blocks_sent = 0
        """Append blocks written to a connection (resends included): events per block = the batching achieved."""
        self._linger = self.config.linger
        self._backlog_limit = 2 * self.config.max_inflight_blocks
        self._task = asyncio.create_task(self._run(), name=f"segment-writer {segment_name}")

    # ---- hooks of the append rules (once per block) ----

    def _open_block(self, large: bool) -> asyncio.Future[None]:
        if self.error is not None:
            raise self.error
        loop = self._loop
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(_consume)
        self.queued = queued = loop.create_future()
        queued.set_result(future)
        if not large:
            if self._appends.has_room:
                loop.call_soon(self._send_if_room)
            else:
                self._linger_handle = loop.call_later(self._linger, self._appends.close_open)
        return future

    def _send_if_room(self) -> None:
        """Adaptive batching: send the open block now if the in-flight window has room for it."""
        if self._appends.close_open_if_room():
            self._send_direct()

    def _send_direct(self) -> None:
        """Write ready blocks from a callback, saving the sender task's wake-up (lower ack latency). The task
        still drains the connection (backpressure), and writes large blocks, resends and everything else."""
        conn = self._conn
        if conn is None or conn.closed or self.sealed or self._closed:
            return
        appends = self._appends
        while (block := appends.next_to_send(large=False)) is not None:
            # One join, then one send: cheaper than handing the kernel the block's thousands of small buffers
            # (writev/sendmsg cost per buffer; Python 3.11's writelines joins anyway, 3.12+ would not).
            conn.write(b"".join(appends.frames(block)))
            self.blocks_sent += 1

    def _block_ready(self) -> None:
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        if self._appends.ready_blocks > self._backlog_limit:
            self._space.clear()
            self.backlogged = True
        self._wakeup.set()

    async def wait_for_space(self) -> None:
        await self._space.wait()

    def flush_nowait(self) -> list[asyncio.Future[None]]:
        """Close the open block now; returns the futures of every unacked block."""
        self._appends.close_open()
        return self._appends.unacked_handles()

    async def flush(self) -> None:
        futures = self.flush_nowait()
        if futures:
            await asyncio.gather(*futures)
        if self.error is not None:
            raise self.error

    def take_unacked(self) -> list[Block]:
        """All events not yet acked, in order (for re-routing after a seal); the writer keeps nothing."""
        blocks = self._appends.take_unacked()
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
            if not self._appends.pending:
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
        appends = self._appends
        while (block := appends.next_to_send()) is not None:
            if block.large:
                await self._write_large(conn, block)
                if self.sealed:
                    return
                continue
            conn.write(b"".join(appends.frames(block)))
            self.blocks_sent += 1
        if appends.ready_blocks <= self.config.max_inflight_blocks:
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
                    self._complete(self._appends.setup(reply.last_event_number))
                    self._wakeup.set()
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

    def _on_close(self, conn: RawConnection, _reason: BaseException | None = None) -> None:
        if conn is self._conn:
            self._conn = None
            if self._appends.pending:
                self._wakeup.set()

    # ---- replies ----

    def _on_reply(self, reply: wire.Reply) -> None:
        outcome = reply_outcome(reply)
        if outcome is ReplyOutcome.ACKNOWLEDGED:
            assert isinstance(reply, wire.DataAppended)
            self._complete(self._appends.acknowledge(reply.event_number))
            if reply.current_segment_write_offset >= 0:
                self.write_offset = reply.current_segment_write_offset
            if self._appends.close_open_if_room():
                self._send_direct()
            self._wakeup.set()
        elif outcome is ReplyOutcome.SEALED:
            self._mark_sealed()
        elif outcome is ReplyOutcome.RECONNECT:
            self._drop_connection()
        elif outcome is ReplyOutcome.CONDITIONAL_CHECK_FAILED:
            self._fail(ConditionalCheckFailedError(f"conditional append to {self.segment_name} failed"))
        elif outcome is ReplyOutcome.FAILED:
            self._fail_pending(error_from_reply(reply, f"appending to {self.segment_name}"))
        else:
            log.debug("writer %s ignores %r", self.writer_id, reply)

    @staticmethod
    def _complete(blocks: list[Block]) -> None:
        for block in blocks:
            if not block.handle.done():
                block.handle.set_result(None)

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
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        for block in self._appends.discard():
            if not block.handle.done():
                block.handle.set_exception(exc)
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
            self._mark_sealed()  # the block stays unacked, first in line for re-routing
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
            self._mark_sealed()  # the block stays unacked, first in line for re-routing
            return
        if not isinstance(merged, wire.SegmentsMerged):
            raise error_from_reply(merged, f"merging a large event into {self.segment_name}")
        self._appends.large_written(block)
        self.write_offset = merged.new_target_write_offset
        block.handle.set_result(None)

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
        appends = self._appends
        return {"segment": self.segment_name, "inflight_blocks": appends.inflight_blocks,
                "ready_blocks": appends.ready_blocks, "next_event": appends.next_event, "sealed": self.sealed,
                "blocks_sent": self.blocks_sent}
