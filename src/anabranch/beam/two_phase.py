"""Two-phase commit between ``ReadFromAnabranch`` runs and ``WriteToAnabranch(checkpoint_name=...)``.

A restartable pipeline runs as a sequence of bounded runs, each from the checkpoint record's cut to a cut taken
when the run starts (``begin_run``). During a run, every finalized bundle's transaction is flushed but not
committed: ``stage`` adds its id to the record's ``extra["staged"]``. When the run has finished (``complete_run``)
one conditional update moves the staged ids to ``pending_txns`` and the cuts to the run's end cut — the commit
point — and then the pending transactions are committed and dropped from the record.

On restart (``recover``, called by ``begin_run``): pending transactions are committed (committing a committed
transaction is a no-op), staged ones — of a run that never reached its commit point — are aborted, so the run
is redone from the recorded cut and each output appears exactly once. Event-time windows close at the end of
every run (the runner fires them when its bounded input ends): a window spanning two runs yields one partial
result per run, so choose run boundaries (``end``) aligned with the windows when aggregates must be whole.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Iterable, Mapping

from anabranch.beam.checkpoint_store import CheckpointConflictError, CheckpointRecord, CheckpointStore, StreamKey
from anabranch.client.controller_types import TxnState
from anabranch.client.errors import ClientError
from anabranch.client.stream_manager import StreamManager
from anabranch.client.stream_positions import tail_positions
from anabranch.model.stream_cut import StreamCut

log = logging.getLogger(__name__)

STAGED = "staged"
"""Key in a checkpoint record's ``extra``: ``{"scope/stream": [txn id, ...]}`` of finalized, uncommitted
transactions of the run in progress."""
CONFLICT_RETRIES = 50


class TransactionLostError(ClientError):
    """A transaction the checkpoint record says is pre-committed was aborted (its lease ran out before the
    pipeline was restarted): its events are lost. Use a longer ``txn_lease_ms`` or restart sooner."""

    retriable = False


def staged(record: CheckpointRecord) -> dict[StreamKey, tuple[uuid.UUID, ...]]:
    out: dict[StreamKey, tuple[uuid.UUID, ...]] = {}
    for name, ids in dict(record.extra.get(STAGED, {})).items():
        scope, _, stream = name.partition("/")
        out[(scope, stream)] = tuple(uuid.UUID(i) for i in ids)
    return out


def _with_staged(record: CheckpointRecord, txns: Mapping[StreamKey, Iterable[uuid.UUID]]) -> CheckpointRecord:
    extra = dict(record.extra)
    encoded = {f"{s}/{t}": [str(i) for i in ids] for (s, t), ids in sorted(txns.items()) if ids}
    if encoded:
        extra[STAGED] = encoded
    else:
        extra.pop(STAGED, None)
    return dataclasses.replace(record, extra=extra)


async def _update(store: CheckpointStore, name: str, change: object) -> CheckpointRecord:
    """Applies ``change(record) -> record`` with a conditional save, retried on conflicts."""
    for _ in range(CONFLICT_RETRIES):
        record = await store.load_or_new(name)
        try:
            return await store.save(change(record))  # type: ignore[operator]
        except CheckpointConflictError:
            await asyncio.sleep(0.01)
    raise CheckpointConflictError(f"checkpoint {name!r} kept changing: {CONFLICT_RETRIES} updates conflicted")


async def stage(manager: StreamManager, scope: str, name: str, stream: StreamKey, txn_id: uuid.UUID) -> None:
    """Records a flushed, finalized transaction of the run in progress."""
    def change(record: CheckpointRecord) -> CheckpointRecord:
        txns = staged(record)
        txns[stream] = (*txns.get(stream, ()), txn_id)
        return _with_staged(record, txns)
    await _update(CheckpointStore(manager, scope), name, change)


async def _commit(manager: StreamManager, stream: StreamKey, txn_id: uuid.UUID) -> None:
    state = await manager.controller.check_transaction_state(*stream, txn_id)
    if state in (TxnState.OPEN, TxnState.COMMITTING):
        await manager.controller.commit_transaction(*stream, txn_id)
    elif state != TxnState.COMMITTED:
        raise TransactionLostError(f"pre-committed transaction {txn_id} of {stream[0]}/{stream[1]} is "
                                   f"{state.name.lower()}: its events are lost")


async def _abort(manager: StreamManager, stream: StreamKey, txn_id: uuid.UUID) -> None:
    state = await manager.controller.check_transaction_state(*stream, txn_id)
    if state == TxnState.OPEN:
        await manager.controller.abort_transaction(*stream, txn_id)


async def recover(manager: StreamManager, scope: str, name: str) -> CheckpointRecord:
    """Commits the record's pending transactions, aborts its staged ones, and clears both."""
    store = CheckpointStore(manager, scope)
    record = await store.load_or_new(name)
    for stream, ids in record.pending_txns.items():
        for txn_id in ids:
            await _commit(manager, stream, txn_id)
    for stream, ids in staged(record).items():
        for txn_id in ids:
            await _abort(manager, stream, txn_id)
    if record.pending_txns or staged(record):
        log.info("checkpoint %s: committed %d pending, aborted %d staged transactions", name,
                 sum(map(len, record.pending_txns.values())), sum(map(len, staged(record).values())))
        record = await store.save(_with_staged(dataclasses.replace(record, pending_txns={}), {}))
    return record


async def begin_run(manager: StreamManager, scope: str, name: str,
                    streams: Iterable[StreamKey]) -> tuple[CheckpointRecord, dict[StreamKey, StreamCut]]:
    """Recovers, then returns the record (its cuts: where the run starts) and the run's end cuts (the tails)."""
    record = await recover(manager, scope, name)
    ends = {(s, t): StreamCut(s, t, await tail_positions(manager.controller, manager.router, s, t))
            for s, t in streams}
    return record, ends


async def complete_run(manager: StreamManager, scope: str, name: str, ends: Mapping[StreamKey, StreamCut]) -> int:
    """The commit point: staged → pending and cuts → ``ends`` in one update; then commits. Returns how many
    transactions were committed."""
    store = CheckpointStore(manager, scope)

    def change(record: CheckpointRecord) -> CheckpointRecord:
        return _with_staged(record.with_cuts(ends).with_pending(staged(record)), {})
    record = await _update(store, name, change)
    await recover(manager, scope, name)
    return sum(map(len, record.pending_txns.values()))
