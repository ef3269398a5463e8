"""Transaction workflows: create, ping, commit, abort, state, lease expiry and crash recovery.

A transaction writes to ``<segment>#transaction.<32 hex>`` for every segment of its epoch (the
active epoch when it was created; the epoch sits in the top 32 bits of its id). Its record
``txn/<hex>`` in the stream's table moves OPEN → COMMITTING → COMMITTED or OPEN → ABORTING →
ABORTED; the intermediate state is written before the segment store is touched, so ``resume``
finishes it after a crash and repeating commit/abort is harmless. A commit into the active epoch
merges each transaction segment into its parent; an older epoch is committed by rolling (see
``scaling``). Lease deadlines are kept in memory on the monotonic clock: after a restart every open
transaction gets a fresh full lease. A ping also rewrites the record, so with several controllers the one that
times transactions out (the leader) sees a ping another controller took: when a deadline passes and the
record's version is not the one it knew, the lease is renewed instead of aborting the transaction.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid

from anabranch.admin.metrics import CONTROLLER as CONTROLLER_METRICS
from anabranch.clock import SYSTEM_CLOCK, Clock
from anabranch.controller.context import ControllerContext, StreamView
from anabranch.controller.epochs import SegmentRecord
from anabranch.controller.errors import (
    IllegalStateError,
    InvalidArgumentError,
    StreamNotFoundError,
    WriteConflictError,
)
from anabranch.controller.records import StreamState, TxnRecord, TxnStatus
from anabranch.controller.scaling import Scaling
from anabranch.model.names import transaction_segment_name, txn_hex

log = logging.getLogger(__name__)

LEASE_MIN_MS = 10_000
LEASE_MAX_MS = 600_000
MAX_EXECUTION_MS = 86_400_000
TXN_PREFIX = "txn/"


class LeaseOutOfRangeError(InvalidArgumentError):
    """A transaction lease outside [10 000, 600 000] ms."""


def new_txn_id(epoch: int) -> uuid.UUID:
    """Epoch in the top 32 bits, random below, with bit 63 clear: the Rust client sign-extends a negative
    ``lowBits`` into the high word (``high << 64 | low as u128``), which would change the id it sees."""
    return uuid.UUID(int=(epoch << 96) | (secrets.randbits(32) << 64) | secrets.randbits(63))


class Transactions:
    def __init__(self, ctx: ControllerContext, scaling: Scaling) -> None:
        self.ctx = ctx
        self.scaling = scaling
        self.deadlines: dict[tuple[str, str, str], float] = {}
        self.versions: dict[tuple[str, str, str], int] = {}
        """The record version each deadline was set for (a newer one means a ping elsewhere renewed the lease)."""

    def _txn_segments(self, view: StreamView, segments: list[SegmentRecord], txn_id: uuid.UUID) -> list[str]:
        return [transaction_segment_name(view.segment_name(s.id), txn_id) for s in segments]

    async def create(self, scope: str, stream: str, lease_ms: int) -> tuple[uuid.UUID, list[SegmentRecord]]:
        if not LEASE_MIN_MS <= lease_ms <= LEASE_MAX_MS:
            raise LeaseOutOfRangeError(f"lease {lease_ms} ms outside [{LEASE_MIN_MS}, {LEASE_MAX_MS}] ms")
        async with self.ctx.lock(scope, stream):
            view = await self.ctx.view(scope, stream)
            if view.state in (StreamState.SEALING, StreamState.SEALED, StreamState.CREATING):
                raise IllegalStateError(f"stream {scope}/{stream} is {view.state.value}: no new transactions")
            segments = (await self.ctx.epoch(view, view.active)).sorted_segments()
            txn_id = new_txn_id(view.active)
            now = self.ctx.wall_ms()
            record = TxnRecord(view.active, TxnStatus.OPEN, lease_ms, now, now + min(1000 * lease_ms,
                                                                                     MAX_EXECUTION_MS))
            version = await view.table.insert(TXN_PREFIX + txn_hex(txn_id), record.encode())
            self.deadlines[(scope, stream, txn_hex(txn_id))] = self.ctx.monotonic() + lease_ms / 1000
            self.versions[(scope, stream, txn_hex(txn_id))] = version
            await asyncio.gather(*(self.ctx.ops.create_segment(name)
                                   for name in self._txn_segments(view, segments, txn_id)))
            return txn_id, segments

    async def _record(self, view: StreamView, txn_id: uuid.UUID) -> tuple[TxnRecord, int] | None:
        found = await view.table.get(TXN_PREFIX + txn_hex(txn_id))
        return None if found is None else (TxnRecord.decode(found[0]), found[1])

    async def ping(self, scope: str, stream: str, txn_id: uuid.UUID, lease_ms: int, attempts: int = 3) -> str:
        view = await self.ctx.view(scope, stream)
        found = await self._record(view, txn_id)
        if found is None:
            return "UNKNOWN"
        record, version = found
        if record.status in (TxnStatus.COMMITTING, TxnStatus.COMMITTED):
            return "COMMITTED"
        if record.status in (TxnStatus.ABORTING, TxnStatus.ABORTED):
            return "ABORTED"
        if lease_ms > LEASE_MAX_MS:
            return "LEASE_TOO_LARGE"
        if self.ctx.wall_ms() + lease_ms > record.max_execution_expiry_ms:
            return "MAX_EXECUTION_TIME_EXCEEDED"
        try:  # a new version tells whichever controller times transactions out that the lease was renewed
            version = await view.table.put(TXN_PREFIX + txn_hex(txn_id), record.encode(), version)
        except WriteConflictError:
            if attempts <= 1:
                raise
            return await self.ping(scope, stream, txn_id, lease_ms, attempts - 1)
        self.deadlines[(scope, stream, txn_hex(txn_id))] = self.ctx.monotonic() + lease_ms / 1000
        self.versions[(scope, stream, txn_hex(txn_id))] = version
        return "OK"

    async def state(self, scope: str, stream: str, txn_id: uuid.UUID) -> str:
        view = await self.ctx.view(scope, stream)
        found = await self._record(view, txn_id)
        return "UNKNOWN" if found is None else found[0].status.value

    async def commit(self, scope: str, stream: str, txn_id: uuid.UUID, writer_id: str = "", timestamp: int = 0
                     ) -> str:
        async with self.ctx.lock(scope, stream):
            try:
                view = await self.ctx.view(scope, stream)
            except StreamNotFoundError:
                return "STREAM_NOT_FOUND"
            found = await self._record(view, txn_id)
            if found is None:
                return "TRANSACTION_NOT_FOUND"
            record, version = found
            if record.status in (TxnStatus.ABORTING, TxnStatus.ABORTED):
                return "FAILURE"
            if record.status is TxnStatus.OPEN:
                if view.state in (StreamState.SEALING, StreamState.SEALED):
                    return "FAILURE"
                record = record.with_status(TxnStatus.COMMITTING, writer_id=writer_id, commit_timestamp=timestamp)
                version = await view.table.put(TXN_PREFIX + txn_hex(txn_id), record.encode(), version)
                self.deadlines.pop((scope, stream, txn_hex(txn_id)), None)
                self.versions.pop((scope, stream, txn_hex(txn_id)), None)
            if record.status is TxnStatus.COMMITTING:
                await self._finish_commit(view, txn_id, record, version)
            return "SUCCESS"

    async def _finish_commit(self, view: StreamView, txn_id: uuid.UUID, record: TxnRecord, version: int) -> None:
        if view.transition is not None:
            await self.scaling.complete(view)
        if record.epoch != view.active:
            await self.scaling.roll_transaction(view, txn_hex(txn_id), record)
            return
        segments = (await self.ctx.epoch(view, record.epoch)).sorted_segments()
        await asyncio.gather(*(
            self.ctx.ops.merge_segments_batch(view.segment_name(seg.id), [source])
            for seg, source in zip(segments, self._txn_segments(view, segments, txn_id), strict=True)))
        await view.table.put(TXN_PREFIX + txn_hex(txn_id), record.with_status(TxnStatus.COMMITTED).encode(), version)
        CONTROLLER_METRICS.transaction_ended("committed")

    async def abort(self, scope: str, stream: str, txn_id: uuid.UUID) -> str:
        async with self.ctx.lock(scope, stream):
            try:
                view = await self.ctx.view(scope, stream)
            except StreamNotFoundError:
                return "STREAM_NOT_FOUND"
            found = await self._record(view, txn_id)
            if found is None:
                return "TRANSACTION_NOT_FOUND"
            if found[0].status in (TxnStatus.COMMITTING, TxnStatus.COMMITTED):
                return "FAILURE"
            await self._abort_locked(view, txn_id, *found)
            return "SUCCESS"

    async def _abort_locked(self, view: StreamView, txn_id: uuid.UUID, record: TxnRecord, version: int) -> None:
        if record.status is TxnStatus.ABORTED:
            return
        key = TXN_PREFIX + txn_hex(txn_id)
        if record.status is TxnStatus.OPEN:
            record = record.with_status(TxnStatus.ABORTING)
            version = await view.table.put(key, record.encode(), version)
        self.deadlines.pop((view.scope, view.stream, txn_hex(txn_id)), None)
        self.versions.pop((view.scope, view.stream, txn_hex(txn_id)), None)
        segments = (await self.ctx.epoch(view, record.epoch)).sorted_segments()
        await asyncio.gather(*(self.ctx.ops.delete_segment(name)
                               for name in self._txn_segments(view, segments, txn_id)))
        await view.table.put(key, record.with_status(TxnStatus.ABORTED).encode(), version)
        CONTROLLER_METRICS.transaction_ended("aborted")

    async def records(self, view: StreamView) -> list[tuple[uuid.UUID, TxnRecord, int]]:
        found = []
        async for key, value, version in view.table.items():
            if key.startswith(TXN_PREFIX.encode()):
                found.append((uuid.UUID(hex=key[len(TXN_PREFIX):].decode()), TxnRecord.decode(value), version))
        return found

    async def list_completed(self, scope: str, stream: str) -> list[tuple[uuid.UUID, str]]:
        view = await self.ctx.view(scope, stream)
        return [(txn_id, record.status.value) for txn_id, record, _ in await self.records(view)
                if record.status in (TxnStatus.COMMITTED, TxnStatus.ABORTED)]

    async def settle_before_seal(self, view: StreamView) -> None:
        """Seal hook (stream lock held): finish committing transactions, abort open ones."""
        for txn_id, record, version in await self.records(view):
            if record.status is TxnStatus.COMMITTING:
                await self._finish_commit(view, txn_id, record, version)
                view = await self.ctx.view(view.scope, view.stream)
            elif record.status in (TxnStatus.OPEN, TxnStatus.ABORTING):
                await self._abort_locked(view, txn_id, record, version)

    async def resume(self, scope: str, stream: str) -> None:
        """Finish commits and aborts in flight; open transactions not tracked yet (after a restart) get a
        fresh full lease."""
        async with self.ctx.lock(scope, stream):
            try:
                view = await self.ctx.view(scope, stream)
            except StreamNotFoundError:
                return
            for txn_id, record, version in await self.records(view):
                if record.status is TxnStatus.COMMITTING:
                    await self._finish_commit(view, txn_id, record, version)
                    view = await self.ctx.view(scope, stream)
                elif record.status is TxnStatus.ABORTING:
                    await self._abort_locked(view, txn_id, record, version)
                elif record.status is TxnStatus.OPEN and (scope, stream, txn_hex(txn_id)) not in self.deadlines:
                    self.deadlines[(scope, stream, txn_hex(txn_id))] = self.ctx.monotonic() + record.lease_ms / 1000
                    self.versions[(scope, stream, txn_hex(txn_id))] = version

    async def expire_due(self) -> int:
        """Abort every open transaction whose lease ran out; returns how many were aborted."""
        now = self.ctx.monotonic()
        aborted = 0
        for (scope, stream, hex_id), deadline in list(self.deadlines.items()):
            if deadline > now:
                continue
            self.deadlines.pop((scope, stream, hex_id), None)
            seen = self.versions.pop((scope, stream, hex_id), None)
            try:
                if await self._renewed_elsewhere(scope, stream, hex_id, seen):
                    continue
                if await self.abort(scope, stream, uuid.UUID(hex=hex_id)) == "SUCCESS":
                    aborted += 1
                    log.info("transaction %s on %s/%s aborted: lease expired", hex_id, scope, stream)
            except Exception:
                log.exception("could not abort expired transaction %s on %s/%s", hex_id, scope, stream)
        return aborted

    async def _renewed_elsewhere(self, scope: str, stream: str, hex_id: str, seen: int | None) -> bool:
        """If the open transaction's record changed since its deadline was set (a ping on another controller),
        give it a new full lease from now and return True."""
        try:
            view = await self.ctx.view(scope, stream)
        except StreamNotFoundError:
            return True
        found = await view.table.get(TXN_PREFIX + hex_id)
        if found is None:
            return True
        record, version = TxnRecord.decode(found[0]), found[1]
        if record.status is not TxnStatus.OPEN or seen is None or version == seen:
            return False
        self.deadlines[(scope, stream, hex_id)] = self.ctx.monotonic() + record.lease_ms / 1000
        self.versions[(scope, stream, hex_id)] = version
        return True

    async def run_lease_timer(self, interval: float = 1.0, clock: Clock = SYSTEM_CLOCK) -> None:
        """Background task: check lease deadlines every ``interval`` seconds of ``clock`` until cancelled."""
        while True:
            await clock.sleep(interval)
            await self.expire_due()
