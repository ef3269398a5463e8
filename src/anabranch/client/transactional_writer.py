"""Transactions: events written to per-transaction segments, visible only after commit.

``TransactionalEventStreamWriter.begin_txn()`` asks the controller for a transaction; the
controller creates one transaction segment per segment of the transaction's epoch. Events are
routed by key exactly as the plain writer does, but into ``<segment>#transaction.<id>``. While the
transaction is open a background task pings the controller so its lease does not expire.
``commit()`` first waits for every append's ack, then asks the controller to merge; ``abort()``
drops everything. After either, the ``Transaction`` refuses further use (``TxnFailedError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from typing import Any, Generic, TypeVar

from anabranch.client.controller_client import PingStatus, TxnState
from anabranch.client.errors import TxnFailedError
from anabranch.client.hashing import SegmentWithRange, StreamSegments, hash_routing_key
from anabranch.client.segment_writer import ClientContext, SegmentWriter
from anabranch.client.serializers import Serializer, default_serializer
from anabranch.model.names import qualified_segment_name, transaction_segment_name

log = logging.getLogger(__name__)
T = TypeVar("T")


class Transaction(Generic[T]):
    """One open transaction. ``async with txn:`` commits on success and aborts on an exception."""

    def __init__(self, context: ClientContext, scope: str, stream: str, txn_id: uuid.UUID,
                 segments: list[SegmentWithRange], serializer: Serializer[T] | None, writer_id: int,
                 lease_ms: int) -> None:
        self.context = context
        self.scope = scope
        self.stream = stream
        self.txn_id = txn_id
        self.serializer = serializer
        self.writer_id = writer_id
        self.lease_ms = lease_ms
        self._segments = StreamSegments(segments)
        self._writers: dict[int, SegmentWriter] = {}
        self._state = TxnState.OPEN
        self._error: BaseException | None = None
        self._pinger = asyncio.create_task(self._ping_loop(), name=f"txn-pinger {txn_id}")

    async def __aenter__(self) -> Transaction[T]:
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        if self._state != TxnState.OPEN:
            return
        if exc_type is None:
            await self.commit()
        else:
            await self.abort()

    @property
    def is_open(self) -> bool:
        return self._state == TxnState.OPEN

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._state != TxnState.OPEN:
            raise TxnFailedError(f"transaction {self.txn_id} is {self._state.name.lower()}")

    def _writer_for(self, position: float) -> SegmentWriter:
        segment = self._segments.segment_for_position(position)
        writer = self._writers.get(segment.segment_id)
        if writer is None:
            parent = qualified_segment_name(self.scope, self.stream, segment.segment_id)
            writer = SegmentWriter(self.context, self.scope, self.stream, segment.segment_id,
                                   transaction_segment_name(parent, self.txn_id), on_sealed=self._on_sealed)
            self._writers[segment.segment_id] = writer
        return writer

    async def write_event(self, event: T, routing_key: str | None = None) -> asyncio.Future[None]:
        """Queue an event in the transaction; the future completes when the transaction segment has it."""
        self._check_open()
        payload: bytes
        if self.serializer is None and isinstance(event, bytes):
            payload = event
        else:
            payload = (self.serializer or default_serializer(event)).serialize(event)
        position = random.random() if routing_key is None else hash_routing_key(routing_key)
        writer = self._writer_for(position)
        future = writer.add(payload, routing_key)
        if writer.backlogged:
            await writer.wait_for_space()
        return future

    async def flush(self) -> None:
        """Wait until every event written to the transaction so far is acknowledged."""
        futures = [f for w in self._writers.values() for f in w.flush_nowait()]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if self._error is not None:
            raise self._error
        if failure is not None:
            raise TxnFailedError(f"an append to transaction {self.txn_id} failed: {failure}") from failure

    async def commit(self, timestamp: int | None = None) -> None:
        """Flush, then commit: the events become visible together (the merge may finish shortly after)."""
        self._check_open()
        try:
            await self.flush()
        except BaseException:
            await self._finish(TxnState.ABORTED)
            raise
        await self.context.controller.commit_transaction(self.scope, self.stream, self.txn_id,
                                                         str(self.writer_id), timestamp)
        await self._finish(TxnState.COMMITTED)

    async def abort(self) -> None:
        """Drop the transaction: none of its events will ever be visible."""
        if self._state != TxnState.OPEN:
            raise TxnFailedError(f"transaction {self.txn_id} is {self._state.name.lower()}")
        await self._finish(TxnState.ABORTED)
        await self.context.controller.abort_transaction(self.scope, self.stream, self.txn_id)

    async def check_status(self) -> TxnState:
        """The controller's view of the transaction (OPEN, COMMITTING, COMMITTED, ABORTING, ABORTED)."""
        return await self.context.controller.check_transaction_state(self.scope, self.stream, self.txn_id)

    async def _finish(self, state: TxnState) -> None:
        self._state = state
        self._pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pinger
        for writer in self._writers.values():
            await writer.close()
        self._writers.clear()

    def _on_sealed(self, writer: SegmentWriter) -> None:
        self._error = TxnFailedError(f"transaction {self.txn_id} was aborted or timed out "
                                     f"(its segment {writer.segment_name} no longer accepts appends)")
        for block in writer.take_unacked():
            if not block.handle.done():
                block.handle.set_exception(self._error)

    async def _ping_loop(self) -> None:
        interval = min(self.lease_ms / 3000.0, 30.0)
        while True:
            await self.context.config.clock.sleep(interval)
            try:
                status = await self.context.controller.ping_transaction(self.scope, self.stream, self.txn_id,
                                                                        self.lease_ms)
            except Exception as exc:
                log.warning("pinging transaction %s failed: %r", self.txn_id, exc)
                continue
            if status != PingStatus.OK:
                log.warning("transaction %s ping answered %s", self.txn_id, status.name)
                if status in (PingStatus.ABORTED, PingStatus.COMMITTED, PingStatus.UNKNOWN):
                    self._error = TxnFailedError(f"transaction {self.txn_id} is no longer open ({status.name})")
                    return


class TransactionalEventStreamWriter(Generic[T]):
    """Begins transactions on one stream; ``writer_id`` identifies the writer to the controller on commit."""

    def __init__(self, context: ClientContext, scope: str, stream: str, serializer: Serializer[T] | None = None,
                 writer_id: int | None = None) -> None:
        self.context = context
        self.scope = scope
        self.stream = stream
        self.serializer = serializer
        self.writer_id = uuid.uuid4().int if writer_id is None else writer_id
        self._open: set[Transaction[T]] = set()

    async def __aenter__(self) -> TransactionalEventStreamWriter[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def begin_txn(self, lease_ms: int | None = None) -> Transaction[T]:
        lease = lease_ms or self.context.config.txn_lease_ms
        created = await self.context.controller.create_transaction(self.scope, self.stream, lease)
        txn = Transaction(self.context, self.scope, self.stream, created.txn_id, list(created.segments),
                          self.serializer, self.writer_id, lease)
        self._open.add(txn)
        return txn

    async def get_txn(self, txn_id: uuid.UUID, lease_ms: int | None = None) -> Transaction[T]:
        """Re-attach to an open transaction (e.g. from another process); TxnFailedError if it is not open."""
        state = await self.context.controller.check_transaction_state(self.scope, self.stream, txn_id)
        if state != TxnState.OPEN:
            raise TxnFailedError(f"transaction {txn_id} is {state.name.lower()}")
        segments = await self.context.controller.get_epoch_segments(self.scope, self.stream, txn_id.int >> 96)
        txn = Transaction(self.context, self.scope, self.stream, txn_id, segments, self.serializer, self.writer_id,
                          lease_ms or self.context.config.txn_lease_ms)
        self._open.add(txn)
        return txn

    async def close(self) -> None:
        """Stops pinging; open transactions are left to time out (abort them first to drop them now)."""
        for txn in list(self._open):
            if txn.is_open:
                await txn._finish(TxnState.UNKNOWN)
        self._open.clear()

    def statistics(self) -> dict[str, Any]:
        return {"open_transactions": sum(1 for t in self._open if t.is_open)}
