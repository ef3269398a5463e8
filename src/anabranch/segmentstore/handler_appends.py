"""The append pipeline of one connection: writer states, in-flight blocks, acks in order (spec §3).

Each append block becomes ONE ``store.append`` call, started as soon as the block arrives (the store completes
the appends of one writer in submission order), so many blocks are in flight per connection. Replies for a
writer go out strictly in the order its blocks arrived: a block's ack or error waits until every earlier block
of that writer completed. ``DataAppended.previous_event_number`` is the writer's previously acknowledged level
(initially the AppendSetup value). After an append error the writer is forgotten: the client must set it up
again. Nothing here parses events.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from anabranch.protocol.commands import (
    ConditionalCheckFailed,
    DataAppended,
    ErrorMessage,
    InvalidEventNumber,
    NoSuchSegment,
    Reply,
    SegmentIsSealed,
    WrongHost,
)
from anabranch.segmentstore.errors import (
    BadEventNumberError,
    BadOffsetError,
    ContainerClosedError,
    ContainerNotOwnedError,
    DiskFullError,
    InvalidRequestError,
    NoSuchSegmentError,
    SegmentSealedError,
)
from anabranch.segmentstore.handler_errors import disk_full_reply

if TYPE_CHECKING:
    from anabranch.protocol.server_connection import Append
    from anabranch.segmentstore.store import AppendResult, SegmentStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Block:
    append: Append
    size: int
    task: asyncio.Future[AppendResult] | None = None


@dataclass(slots=True)
class WriterState:
    """One writer set up on this connection."""

    writer_id: uuid.UUID
    segment: str
    last_acked: int | None = None
    """None while SetupAppend is still looking up the writer's last event number."""
    blocks: deque[_Block] = field(default_factory=deque)
    """Blocks in arrival order whose reply has not been sent."""


class AppendPipeline:
    """Appends of one connection. ``reply`` sends a reply; ``fail`` closes the connection with a reason."""

    def __init__(
        self,
        store: SegmentStore,
        reply: Callable[[Reply], None],
        fail: Callable[[str], None],
        remove_writer: Callable[[uuid.UUID], None],
        on_inflight_change: Callable[[int], None],
        on_appended: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self._store = store
        self._reply = reply
        self._fail = fail
        self._remove_writer = remove_writer
        self._on_inflight_change = on_inflight_change
        self._on_appended = on_appended
        """Called once per stored block with (segment, bytes, events): traffic statistics."""
        self._writers: dict[uuid.UUID, WriterState] = {}
        self.inflight_bytes = 0

    def begin_setup(self, writer_id: uuid.UUID, segment: str) -> WriterState:
        """Register the writer at once so that appends arriving before the setup finished queue behind it."""
        state = WriterState(writer_id, segment)
        self._writers[writer_id] = state
        return state

    def finish_setup(self, state: WriterState, last_event_number: int) -> None:
        if self._writers.get(state.writer_id) is not state:
            return
        state.last_acked = last_event_number
        for block in state.blocks:
            if block.task is None:
                self._submit(state, block)
        self._drain(state)

    def abandon_setup(self, state: WriterState) -> None:
        """SetupAppend failed: forget the writer (queued blocks are dropped with it)."""
        if self._writers.get(state.writer_id) is state:
            self._forget(state)
            for block in state.blocks:
                self._release(block)

    def append(self, append: Append) -> None:
        state = self._writers.get(append.writer_id)
        if state is None or state.segment != append.segment:
            self._fail(f"append for writer {append.writer_id} on {append.segment!r} that is not set up")
            return
        block = _Block(append, len(append.data))
        self.inflight_bytes += block.size
        self._on_inflight_change(self.inflight_bytes)
        state.blocks.append(block)
        if state.last_acked is not None:
            self._submit(state, block)

    def _submit(self, state: WriterState, block: _Block) -> None:
        append = block.append
        block.task = asyncio.ensure_future(
            self._store.append(
                append.segment,
                append.data,
                writer_id=append.writer_id,
                event_number=append.event_number,
                event_count=append.event_count,
                expected_offset=append.expected_offset,
            )
        )
        block.task.add_done_callback(lambda _: self._drain(state))

    def _release(self, block: _Block) -> None:
        self.inflight_bytes -= block.size
        self._on_inflight_change(self.inflight_bytes)

    def _drain(self, state: WriterState) -> None:
        """Send the replies of the completed blocks at the head of the writer's queue, in order."""
        while state.blocks and state.blocks[0].task is not None and state.blocks[0].task.done():
            block = state.blocks.popleft()
            self._release(block)
            task = block.task
            assert task is not None and state.last_acked is not None
            if task.cancelled():
                continue
            exc = task.exception()
            append = block.append
            if exc is None:
                result = task.result()
                if self._on_appended is not None:
                    self._on_appended(append.segment, len(append.data), append.event_count)
                if append.event_number > state.last_acked:
                    self._reply(
                        DataAppended(
                            append.writer_id, append.event_number, state.last_acked, append.request_id,
                            result.new_length,
                        )
                    )
                    state.last_acked = append.event_number
            elif not self._append_failed(state, append, exc):
                return

    def _append_failed(self, state: WriterState, append: Append, exc: BaseException) -> bool:
        """Reply to a failed append; False if the connection is being closed."""
        if isinstance(exc, BadOffsetError) and append.expected_offset is not None:
            self._reply(ConditionalCheckFailed(append.writer_id, append.event_number, append.request_id))
            return True
        if isinstance(exc, BadEventNumberError):
            self._reply(InvalidEventNumber(append.writer_id, append.request_id, "", append.event_number))
            self._fail(f"writer {append.writer_id} sent a stale event number: {exc}")
            return False
        if isinstance(exc, SegmentSealedError):
            reply: Reply = SegmentIsSealed(append.request_id, append.segment, "", append.event_number)
        elif isinstance(exc, NoSuchSegmentError):
            reply = NoSuchSegment(append.request_id, append.segment, "", -1)
        elif isinstance(exc, ContainerNotOwnedError):
            reply = WrongHost(append.request_id, append.segment, "", "")
        elif isinstance(exc, ContainerClosedError):
            self._fail(f"append to {append.segment!r} failed: {exc}")
            return False
        elif isinstance(exc, DiskFullError | InvalidRequestError):
            # Said to the client, then the connection closes: clients that ignore ErrorMessage (Rust) would
            # otherwise wait for the ack forever; they reconnect and retry the unacknowledged events.
            self._reply(disk_full_reply(exc, append.request_id, append.segment) if isinstance(exc, DiskFullError)
                        else ErrorMessage(append.request_id, append.segment, str(exc), ErrorMessage.ILLEGAL_ARGUMENT))
            self._fail(f"append to {append.segment!r} refused: {exc}")
            return False
        else:
            log.error("append to %s failed", append.segment, exc_info=exc)
            self._fail(f"append to {append.segment!r} failed: {exc!r}")
            return False
        self._reply(reply)
        if not any(b.task is not None and not b.task.done() for b in state.blocks):
            self._forget(state)
        return True

    def _forget(self, state: WriterState) -> None:
        """Drop the writer after an append error; the client must set it up again."""
        if self._writers.get(state.writer_id) is state:
            del self._writers[state.writer_id]
            self._remove_writer(state.writer_id)

    def close(self) -> None:
        """The connection closed: in-flight appends still complete in the store, their replies are dropped."""
        for state in self._writers.values():
            for block in state.blocks:
                if block.task is not None:
                    block.task.add_done_callback(_consume)
        self._writers.clear()


def _consume(task: asyncio.Future[AppendResult]) -> None:
    if not task.cancelled():
        task.exception()
