"""Scaling workflows: manual scale, forced scale (from an update), and rolling-transaction epochs.

A scale is recorded before anything happens on the segment store: one atomic table update writes the
``transition`` record, the new epoch record and the new ``latest`` pointer. ``complete`` then creates
the successors, seals the old segments, switches the active epoch and drops the transition; every
step is idempotent, so the startup sweep can run it again after a crash. Successors are visible
(from the latest epoch record) before the old segments are sealed. Each new epoch record keeps the
reason for it (``epochs.REASON_*``: manual scale, auto-scale, forced by an update, rolling transaction).

Rolling commit of a transaction whose epoch T is older than the active epoch A adds two epochs: a
duplicate of T (fresh segments, into which the transaction's segments are merged, then sealed) and a
duplicate of A (fresh segments that replace A's, which are sealed). Readers see A's data, then the
transaction's, then new data: the order a commit at T would have given.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from anabranch.admin.metrics import CONTROLLER as CONTROLLER_METRICS
from anabranch.controller.context import ControllerContext, StreamView
from anabranch.controller.epochs import (
    REASON_MANUAL,
    REASON_UPDATE,
    EpochRecord,
    ScaleInputInvalidError,
    ScalePreconditionError,
    SegmentRecord,
    duplicate_epoch,
    next_epoch,
    validate_scale,
)
from anabranch.controller.errors import SegmentSealedError, StreamNotFoundError
from anabranch.controller.records import ScaleTransition, StreamState, TxnRecord, TxnStatus
from anabranch.controller.validation import MAX_SEGMENTS_PER_EPOCH
from anabranch.model.keyspace import Range
from anabranch.model.names import transaction_segment_name
from anabranch.protocol.commands import NOT_EXISTS

log = logging.getLogger(__name__)


class Scaling:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx

    async def scale(self, scope: str, stream: str, sealed: Sequence[int], new_ranges: Sequence[Range], *,
                    reason: str = REASON_MANUAL) -> tuple[str, list[SegmentRecord], int]:
        """A scale (manual unless ``reason`` says otherwise): (status name, new segments, the epoch scaled from)."""
        async with self.ctx.lock(scope, stream):
            try:
                view = await self.ctx.view(scope, stream)
            except StreamNotFoundError:
                return "FAILURE", [], 0
            if view.state in (StreamState.SEALING, StreamState.SEALED, StreamState.CREATING):
                return "FAILURE", [], 0
            if view.transition is not None:
                await self.complete(view)
                view = await self.ctx.view(scope, stream)
            active = await self.ctx.epoch(view, view.active)
            try:
                validate_scale(active, sealed, new_ranges, view.config.scaling.min_segments)
            except ScalePreconditionError as exc:
                log.info("scale of %s/%s refused: %s", scope, stream, exc)
                return "PRECONDITION_FAILED", [], active.epoch
            except ScaleInputInvalidError as exc:
                log.info("scale of %s/%s refused: %s", scope, stream, exc)
                return "FAILURE", [], active.epoch
            if len(active.segments) - len(set(sealed)) + len(new_ranges) > MAX_SEGMENTS_PER_EPOCH:
                log.info("scale of %s/%s refused: more than %d segments in an epoch", scope, stream,
                         MAX_SEGMENTS_PER_EPOCH)
                return "FAILURE", [], active.epoch
            created = await self.scale_locked(view, sealed, new_ranges, reason=reason)
            return "STARTED", created, active.epoch

    async def scale_locked(self, view: StreamView, sealed: Sequence[int], new_ranges: Sequence[Range], *,
                           reason: str | None = None) -> list[SegmentRecord]:
        """Record and run a validated scale (caller holds the stream lock); returns the new segments.

        Without a ``reason``, a scale run while the stream is UPDATING is recorded as forced by the update,
        any other as manual.
        """
        if reason is None:
            reason = REASON_UPDATE if view.state is StreamState.UPDATING else REASON_MANUAL
        active = await self.ctx.epoch(view, view.active)
        record = next_epoch(active, sealed, new_ranges, view.next_number, self.ctx.wall_ms(), reason)
        transition = ScaleTransition("scale", active.epoch, tuple(sealed), tuple(new_ranges))
        await view.table.put_many([
            ("transition", transition.encode(), NOT_EXISTS),
            (f"epoch/{record.epoch}", record.encode(), NOT_EXISTS),
            ("epochs", view.pointer(latest=record.epoch, next=view.next_number + len(new_ranges)),
             view.pointer_version),
        ])
        await self.complete(await self.ctx.view(view.scope, view.stream))
        return sorted((s for s in record.segments if s.creation_epoch == record.epoch), key=lambda s: s.key_start)

    async def roll_transaction(self, view: StreamView, txn_hex: str, txn: TxnRecord) -> None:
        """Record and run a rolling commit of a transaction from an older epoch (caller holds the lock)."""
        source = await self.ctx.epoch(view, txn.epoch)
        active = await self.ctx.epoch(view, view.active)
        now = self.ctx.wall_ms()
        first = duplicate_epoch(source, view.latest + 1, view.next_number, max(now, active.creation_time + 1))
        second = duplicate_epoch(active, view.latest + 2, view.next_number + len(first.segments),
                                 max(now, first.creation_time + 1))
        transition = ScaleTransition("rolling", active.epoch, (), (), txn_hex)
        await view.table.put_many([
            ("transition", transition.encode(), NOT_EXISTS),
            (f"epoch/{first.epoch}", first.encode(), NOT_EXISTS),
            (f"epoch/{second.epoch}", second.encode(), NOT_EXISTS),
            ("epochs", view.pointer(latest=second.epoch,
                                    next=view.next_number + len(first.segments) + len(second.segments)),
             view.pointer_version),
        ])
        await self.complete(await self.ctx.view(view.scope, view.stream))

    async def complete(self, view: StreamView) -> None:
        """Finish the recorded transition (idempotent)."""
        transition = view.transition
        if transition is None:
            return
        policy = view.config.scaling
        ops = self.ctx.ops
        old = await self.ctx.epoch(view, transition.old_epoch)
        latest = await self.ctx.epoch(view, view.latest)
        if transition.kind == "rolling":
            await self._roll(view, transition, old)
        else:
            await asyncio.gather(*(
                ops.create_segment(view.segment_name(seg.id), policy.scale_type, policy.target_rate,
                                   view.config.rollover_size_bytes)
                for seg in latest.segments if seg.creation_epoch == latest.epoch))
            await asyncio.gather(*(ops.seal_segment(view.segment_name(seg_id)) for seg_id in transition.sealed))
        view.pointer_version = await view.table.put("epochs", view.pointer(active=latest.epoch),
                                                    view.pointer_version)
        view.active = latest.epoch
        await view.table.remove("transition")
        view.transition = None
        log.info("stream %s/%s: %s from epoch %d to %d complete", view.scope, view.stream, transition.kind,
                 old.epoch, latest.epoch)
        CONTROLLER_METRICS.scaled(latest.reason)

    async def _roll(self, view: StreamView, transition: ScaleTransition, active: EpochRecord) -> None:
        ops = self.ctx.ops
        policy = view.config.scaling
        found = await view.table.get(f"txn/{transition.txn}")
        if found is None:
            raise StreamNotFoundError(f"transaction {transition.txn} of {view.scope}/{view.stream} vanished")
        txn = TxnRecord.decode(found[0])
        txn_id = uuid.UUID(hex=transition.txn)
        source = await self.ctx.epoch(view, txn.epoch)
        first = await self.ctx.epoch(view, view.latest - 1)
        second = await self.ctx.epoch(view, view.latest)
        for src, dup in zip(source.sorted_segments(), first.sorted_segments(), strict=True):
            target = view.segment_name(dup.id)
            await ops.create_segment(target, policy.scale_type, policy.target_rate, view.config.rollover_size_bytes)
            try:
                await ops.merge_segments_batch(target, [transaction_segment_name(view.segment_name(src.id), txn_id)])
            except SegmentSealedError:
                log.debug("rolling target %s already sealed: the merge happened before a restart", target)
            await ops.seal_segment(target)
        await asyncio.gather(*(
            ops.create_segment(view.segment_name(seg.id), policy.scale_type, policy.target_rate,
                               view.config.rollover_size_bytes)
            for seg in second.segments))
        await asyncio.gather(*(ops.seal_segment(view.segment_name(seg.id)) for seg in active.segments))
        if txn.status is not TxnStatus.COMMITTED:
            await view.table.put(f"txn/{transition.txn}", txn.with_status(TxnStatus.COMMITTED).encode(), found[1])

    async def check_scale(self, scope: str, stream: str, epoch: int) -> str:
        try:
            view = await self.ctx.view(scope, stream)
        except StreamNotFoundError:
            return "INVALID_INPUT"
        if epoch > view.active:
            return "INVALID_INPUT"
        if epoch == view.active:
            return "IN_PROGRESS"
        return "SUCCESS"
