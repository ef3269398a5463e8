"""The operation processor: group-commits queued operations into Tier-1 records, then applies them.

Callers validate and stage an operation (container.py), then ``submit`` it. One background task
takes EVERYTHING queued (up to ``max_record_bytes``) into one log record, so one fsync covers all
appends pending across writers and segments; only after the log append returns does it call
``apply(op, sequence)`` for each operation in order and resolve the callers' futures, so nothing
becomes visible before it is durable. A checkpoint request is written alone, with a snapshot taken
when all earlier records have been applied. If the log fails, every queued operation fails with
ContainerClosedError and the processor stops: the staged state can no longer be trusted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from anabranch.segmentstore.errors import ContainerClosedError
from anabranch.segmentstore.operations import Append, Checkpoint, Operation, encode_into
from anabranch.storage.interfaces import Buffer, DurableDataLog

log = logging.getLogger(__name__)

Apply = Callable[[Operation, int], None]
Snapshot = Callable[[], bytes]


class CheckpointRequest:
    """Queued in place of a Checkpoint: the snapshot is taken when the record is written."""

    __slots__ = ("snapshot",)

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot


_Queued = tuple[Operation | CheckpointRequest, "asyncio.Future[int]"]


class OperationProcessor:
    def __init__(self, container_id: int, log_: DurableDataLog, apply: Apply, *,
                 max_record_bytes: int = 8 * 1024 * 1024, on_failure: Callable[[], None] | None = None) -> None:
        self._container_id = container_id
        self._log = log_
        self._apply = apply
        self._max_record_bytes = max_record_bytes
        self._on_failure = on_failure
        self._queue: deque[_Queued] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closing = False
        self.records = 0
        self.operations = 0
        self.bytes_written = 0
        self.last_sequence = 0

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"durable-log-{self._container_id}")

    def check_open(self) -> None:
        if self._failure is not None:
            raise ContainerClosedError(self._container_id, f"failed ({self._failure!r})")
        if self._closing or self._task is None:
            raise ContainerClosedError(self._container_id)

    def submit(self, op: Operation | CheckpointRequest) -> asyncio.Future[int]:
        """Queue an already validated and staged operation; the future gives its log sequence once applied."""
        self.check_open()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        self._wakeup.set()
        return future

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def abort(self) -> None:
        """Stop at once without writing what is queued (a simulated crash)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
        self._fail_queued(ContainerClosedError(self._container_id, "aborted"))

    def _take_batch(self) -> list[_Queued]:
        first = self._queue.popleft()
        batch = [first]
        if isinstance(first[0], CheckpointRequest):
            return batch
        size = first[0].length if isinstance(first[0], Append) else 64
        while self._queue and size < self._max_record_bytes:
            op = self._queue[0][0]
            if isinstance(op, CheckpointRequest):
                break
            size += op.length if isinstance(op, Append) else 64
            batch.append(self._queue.popleft())
        return batch

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                await self._write(self._take_batch())
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.exception("container %d: durable log failed; failing queued operations", self._container_id)
            self._failure = exc
            self._fail_queued(ContainerClosedError(self._container_id, f"failed ({exc!r})"))
            if self._on_failure is not None:
                self._on_failure()

    async def _write(self, batch: list[_Queued]) -> None:
        buffers: list[Buffer] = []
        ops: list[Operation] = []
        for queued, _ in batch:
            op = Checkpoint(queued.snapshot()) if isinstance(queued, CheckpointRequest) else queued
            ops.append(op)
            encode_into(op, buffers)
        try:
            sequence = await self._log.append(buffers)
        except BaseException as exc:
            error = ContainerClosedError(self._container_id, f"failed: Tier-1 append failed ({exc!r})")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            raise
        self.records += 1
        self.operations += len(ops)
        self.bytes_written += sum(b.nbytes if isinstance(b, memoryview) else len(b) for b in buffers)
        self.last_sequence = sequence
        for i, (op, (_, future)) in enumerate(zip(ops, batch, strict=True)):
            try:
                self._apply(op, sequence)
            except BaseException as exc:
                error = ContainerClosedError(self._container_id, f"failed: could not apply {op!r} ({exc!r})")
                for _, pending in batch[i:]:
                    if not pending.done():
                        pending.set_exception(error)
                raise
            if not future.done():
                future.set_result(sequence)

    def _fail_queued(self, error: BaseException) -> None:
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_exception(error)
