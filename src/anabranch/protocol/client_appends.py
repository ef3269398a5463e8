"""The client's side of appending to one segment, sans-IO: events in, append blocks and decisions out.

The counterpart of :mod:`anabranch.protocol.server_connection` (spec §1.7): one :class:`ClientAppends` per
writer id and segment holds the rules of the append protocol, and its driver (``client/segment_writer.py``)
does the I/O, the timers, the futures and the retries. No sockets, no asyncio, no clock.

Blocks. Events arrive as payloads and are framed (``[i32 0][i32 len][payload]``) into the *open* block; a
block closes when the next event would push it past ``max_block_bytes`` or it holds ``max_block_events``
events (or when the driver calls :meth:`ClientAppends.close_open`, e.g. after its linger time). An event larger
than ``max_event_size`` gets a block of its own marked ``large`` (the driver writes it through a transient
segment). Work is per block, never per event: an event costs two list appends and an integer update
(:meth:`ClientAppends.add`, or :meth:`ClientAppends.add_many` for several events with one key); the event headers
are made when the block is framed, with one slice assignment when its events have one size (the common case).

Adaptive batching: :attr:`ClientAppends.has_room` says fewer than ``max_inflight_blocks`` closed blocks wait to
be sent or acknowledged. The driver sends the open block at once while there is room (a lone event does not wait)
and otherwise lets it fill while earlier blocks are in flight; :meth:`ClientAppends.close_open_if_room` closes it
when an ack makes room. Blocks then grow with the event rate times the ack latency, up to the block limits (Pravega's
client sizes its blocks from the same two measurements).

Invariants:

- Event numbers are per writer id, consecutive, starting at 1, and assigned when a block closes (the
  open block has none yet); a block keeps its numbers for life and is sent as one AppendBlockEnd whose
  event number is the block's last.
- Blocks move open → ready → in flight → acknowledged, in event-number order, and every queue stays
  sorted: in-flight blocks all come before ready ones. At most ``max_inflight_blocks`` are in flight; a
  large block is in flight alone: sent only when nothing else is, and nothing follows it until
  :meth:`ClientAppends.large_written` (so order holds across the transient segment).
- ``DataAppended(n)`` completes every in-flight block whose last event is ≤ n, oldest first.
- ``AppendSetup(n)`` after a reconnect: the blocks the server already has (last event ≤ n) are
  acknowledged; every other block is resent, in order, exactly once. ``n`` inside a block or beyond the
  last numbered event means the server and the client disagree: :class:`AppendStateError`.
- ``InvalidEventNumber`` means the same disagreement on a live connection: reconnect, and ``SetupAppend``
  resynchronises. ``ConditionalCheckFailed`` cannot answer this writer's unconditional appends: a
  permanent failure.

The driver learns of block transitions through two per-block hooks given at construction: ``open_block``
returns the handle (the client: a future) of each new block, and may raise to refuse the event;
``block_ready`` tells it a newly closed block joined the ready queue (stop its linger timer, wake the
sender). :meth:`ClientAppends.setup` calls neither: its caller knows what it did.
"""

from __future__ import annotations

import enum
import struct
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from anabranch.errors import ProtocolError
from anabranch.protocol import commands as wire
from anabranch.protocol.codec import encode_append_block_end

H = TypeVar("H")
EVENT_HEADER = struct.Struct(">ii")
_pack_header = EVENT_HEADER.pack
_HEADERS: dict[int, bytes] = {}
"""Event headers by payload length, shared (they are immutable): a lookup costs less than packing one."""
_HEADERS_LIMIT = 4096


def event_header(length: int) -> bytes:
    """The ``[i32 0][i32 length]`` header of a payload of ``length`` bytes (cached)."""
    header = _HEADERS.get(length)
    if header is None:
        if len(_HEADERS) >= _HEADERS_LIMIT:
            _HEADERS.clear()
        header = _HEADERS[length] = _pack_header(0, length)
    return header
NO_EVENT = wire.NULL_ATTRIBUTE_VALUE
"""``AppendSetup.last_event_number`` when the segment has nothing from this writer id."""


class AppendStateError(ProtocolError):
    """The server's event number contradicts the blocks this writer numbered (it must not be trusted)."""

    retriable = False


class ReplyOutcome(enum.Enum):
    """What a reply to a writer means for its appends."""

    ACKNOWLEDGED = "acknowledged"
    """DataAppended: call :meth:`ClientAppends.acknowledge` with its event number."""
    SEALED = "sealed"
    """SegmentIsSealed / NoSuchSegment: stop sending; the unacked blocks go elsewhere, in order."""
    RECONNECT = "reconnect"
    """WrongHost / InvalidEventNumber / AuthTokenCheckFailed: drop the connection and set up appends again."""
    CONDITIONAL_CHECK_FAILED = "conditional check failed"
    """The server rejected an append on its offset: a permanent failure for this writer."""
    FAILED = "failed"
    """ErrorMessage: the pending events fail; later events start over."""
    IGNORED = "ignored"
    """Not about this writer's appends."""


_OUTCOMES: dict[type, ReplyOutcome] = {
    wire.DataAppended: ReplyOutcome.ACKNOWLEDGED,
    wire.SegmentIsSealed: ReplyOutcome.SEALED,
    wire.NoSuchSegment: ReplyOutcome.SEALED,
    wire.WrongHost: ReplyOutcome.RECONNECT,
    wire.InvalidEventNumber: ReplyOutcome.RECONNECT,
    wire.AuthTokenCheckFailed: ReplyOutcome.RECONNECT,
    wire.ConditionalCheckFailed: ReplyOutcome.CONDITIONAL_CHECK_FAILED,
}


def reply_outcome(reply: wire.Reply) -> ReplyOutcome:
    """What ``reply`` (addressed to an appending writer) means; see :class:`ReplyOutcome`."""
    outcome = _OUTCOMES.get(type(reply))
    if outcome is not None:
        return outcome
    return ReplyOutcome.FAILED if isinstance(reply, wire.ErrorMessage) else ReplyOutcome.IGNORED


class OutgoingBlock(Generic[H]):
    """Framed events sent as one append; ``keys`` keep each event's routing key (for re-routing)."""

    __slots__ = ("events", "first_event", "handle", "keys", "large", "last_event", "size")

    def __init__(self, handle: H, *, large: bool = False) -> None:
        self.handle = handle
        """What the driver attached to the block (the client: the future of its events)."""
        self.events: list[bytes] = []
        """The events' payloads, in order (framed with their headers by :attr:`parts`)."""
        self.keys: list[str | None] = []
        self.size = 0
        self.first_event = 0
        self.last_event = 0
        self.large = large

    @property
    def count(self) -> int:
        """The number of events in the block."""
        return len(self.keys)

    def payloads(self) -> list[bytes]:
        """The events' payloads (without their headers), in order."""
        return list(self.events)

    @property
    def parts(self) -> list[bytes]:
        """Header, payload, header, payload, ... (the block's bytes, never joined here)."""
        events = self.events
        count = len(events)
        parts: list[bytes] = [b""] * (2 * count)
        parts[1::2] = events
        if not count:
            return parts
        first = len(events[0])
        if self.size == count * (first + 8) and max(map(len, events)) == first:  # one size: one header
            parts[0::2] = [event_header(first)] * count
        else:
            parts[0::2] = [event_header(len(event)) for event in events]
        return parts


class ClientAppends(Generic[H]):
    """Append blocks of one writer id on one segment; see the module docstring for the rules."""

    __slots__ = ("_block_ready", "_fast_limit", "_inflight", "_max_block_bytes", "_max_block_events",
                 "_max_event_size", "_max_inflight", "_new_handle", "_next_event", "_open", "_ready", "request_id",
                 "writer_id")

    def __init__(self, writer_id: uuid.UUID, request_id: int, *, open_block: Callable[[bool], H],
                 block_ready: Callable[[], None], max_block_bytes: int, max_block_events: int,
                 max_event_size: int, max_inflight_blocks: int) -> None:
        self.writer_id = writer_id
        self.request_id = request_id
        self._new_handle = open_block
        self._block_ready = block_ready
        self._max_block_bytes = max_block_bytes
        self._max_block_events = max_block_events
        self._max_event_size = max_event_size
        self._max_inflight = max_inflight_blocks
        self._fast_limit = min(max_block_bytes, max_event_size + 8)
        """A block this size or smaller takes another event without further checks (``add``'s fast path)."""
        self._open: OutgoingBlock[H] | None = None
        self._ready: deque[OutgoingBlock[H]] = deque()
        self._inflight: deque[OutgoingBlock[H]] = deque()
        self._next_event = 1

    # ---- building blocks (the hot path) ----

    def add(self, payload: bytes, key: str | None) -> H:
        """Frame one event into the open block; returns the handle of the block that holds it."""
        size = len(payload) + 8
        block = self._open
        if block is None or block.size + size > self._fast_limit:
            return self._add_slow(payload, key)
        block.events.append(payload)
        keys = block.keys
        keys.append(key)
        block.size += size
        if len(keys) >= self._max_block_events:
            self.close_open()
        return block.handle

    def add_many(self, payloads: Iterable[bytes], key: str | None) -> list[H]:
        """Frame several events with one routing key, in order; returns the distinct handles of their blocks."""
        handles: list[H] = []
        block = None
        for payload in payloads:
            size = len(payload) + 8
            block = self._open
            if block is None or block.size + size > self._fast_limit:
                handle = self._add_slow(payload, key)
                if not handles or handles[-1] is not handle:
                    handles.append(handle)
                continue
            if not handles or handles[-1] is not block.handle:
                handles.append(block.handle)
            block.events.append(payload)
            keys = block.keys
            keys.append(key)
            block.size += size
            if len(keys) >= self._max_block_events:
                self.close_open()
        return handles

    def _add_slow(self, payload: bytes, key: str | None) -> H:
        """``add`` when the event is large, or does not fit the open block (or there is none)."""
        size = len(payload) + 8
        if size > self._max_event_size + 8:
            return self._add_large(payload, key)
        block = self._open
        if block is not None and block.size + size > self._max_block_bytes:
            self.close_open()
            block = None
        if block is None:
            block = self._open = OutgoingBlock(self._new_handle(False))
        block.events.append(payload)
        block.keys.append(key)
        block.size += size
        if len(block.keys) >= self._max_block_events:
            self.close_open()
        return block.handle

    def _add_large(self, payload: bytes, key: str | None) -> H:
        self.close_open()
        block = OutgoingBlock(self._new_handle(True), large=True)
        block.events.append(payload)
        block.keys.append(key)
        block.size = 8 + len(payload)
        self._enqueue(block)
        return block.handle

    def close_open(self) -> None:
        """Number the open block (if any) and queue it for sending."""
        block = self._open
        if block is not None:
            self._open = None
            self._enqueue(block)

    def close_open_if_room(self) -> bool:
        """Close the open block if the in-flight window has room for it (adaptive batching); True if it did."""
        if self._open is None or len(self._ready) + len(self._inflight) >= self._max_inflight:
            return False
        self.close_open()
        return True

    def _enqueue(self, block: OutgoingBlock[H]) -> None:
        block.first_event = self._next_event
        self._next_event += len(block.keys)
        block.last_event = self._next_event - 1
        self._ready.append(block)
        self._block_ready()

    # ---- sending ----

    def next_to_send(self, *, large: bool = True) -> OutgoingBlock[H] | None:
        """The next ready block, now in flight; None while the in-flight window (or a large block) forbids, or
        when the next block is large and ``large`` is False (a caller that cannot write large blocks)."""
        ready = self._ready
        inflight = self._inflight
        if not ready or len(inflight) >= self._max_inflight or (inflight and (ready[0].large or inflight[0].large)):
            return None
        if not large and ready[0].large:
            return None
        block = ready.popleft()
        self._inflight.append(block)
        return block

    def frames(self, block: OutgoingBlock[H]) -> list[bytes | memoryview]:
        """The wire bytes of ``block``: one AppendBlockEnd carrying its events, numbered by its last event."""
        return encode_append_block_end(self.writer_id, block.size, block.parts, block.size, len(block.keys),
                                       block.last_event, self.request_id)

    def large_written(self, block: OutgoingBlock[H]) -> None:
        """A large block was merged into the segment: it is acknowledged."""
        self._inflight.remove(block)

    # ---- replies ----

    def acknowledge(self, event_number: int) -> list[OutgoingBlock[H]]:
        """DataAppended(``event_number``): the in-flight blocks it completes, oldest first."""
        inflight = self._inflight
        done: list[OutgoingBlock[H]] = []
        while inflight and inflight[0].last_event <= event_number:
            done.append(inflight.popleft())
        return done

    def setup(self, last_event_number: int) -> list[OutgoingBlock[H]]:
        """AppendSetup(``last_event_number``) on a new connection: returns the blocks the server already has.

        Every other unacknowledged block is ready again, in order, to be sent once on this connection.
        """
        ready = self._ready
        inflight = self._inflight
        while inflight:
            ready.appendleft(inflight.pop())
        done: list[OutgoingBlock[H]] = []
        if last_event_number != NO_EVENT:
            if last_event_number >= self._next_event:
                raise AppendStateError(
                    f"the segment store holds event {last_event_number} of writer {self.writer_id}, which only "
                    f"numbered events up to {self._next_event - 1}")
            while ready and ready[0].last_event <= last_event_number:
                done.append(ready.popleft())
            if ready and ready[0].first_event <= last_event_number:
                raise AppendStateError(
                    f"the segment store holds writer {self.writer_id}'s events up to {last_event_number}, inside "
                    f"the block of events {ready[0].first_event}-{ready[0].last_event} (blocks are atomic)")
        return done

    # ---- giving up ----

    def take_unacked(self) -> list[OutgoingBlock[H]]:
        """Every block not yet acknowledged, the open one numbered too, in order; nothing is kept."""
        self.close_open()
        blocks = [*self._inflight, *self._ready]
        self._inflight.clear()
        self._ready.clear()
        return blocks

    def discard(self) -> list[OutgoingBlock[H]]:
        """Every block not yet acknowledged, the open one unnumbered (it was never sent); nothing is kept."""
        blocks = [*self._inflight, *self._ready, *([self._open] if self._open is not None else [])]
        self._inflight.clear()
        self._ready.clear()
        self._open = None
        return blocks

    # ---- state ----

    @property
    def ready_blocks(self) -> int:
        return len(self._ready)

    @property
    def inflight_blocks(self) -> int:
        return len(self._inflight)

    @property
    def idle(self) -> bool:
        """Whether no closed block waits to be sent or acknowledged (the open one may hold events)."""
        return not self._ready and not self._inflight

    @property
    def has_room(self) -> bool:
        """Whether fewer than ``max_inflight_blocks`` closed blocks wait to be sent or acknowledged."""
        return len(self._ready) + len(self._inflight) < self._max_inflight

    @property
    def open_events(self) -> int:
        """Events in the open block (not numbered yet)."""
        return len(self._open.keys) if self._open is not None else 0

    @property
    def pending(self) -> bool:
        """Whether any closed block is not yet acknowledged."""
        return bool(self._ready or self._inflight)

    @property
    def next_event(self) -> int:
        """The number the next closed block's first event gets."""
        return self._next_event

    def unacked_handles(self) -> list[H]:
        """The handles of every closed, unacknowledged block, in order."""
        return [b.handle for b in (*self._inflight, *self._ready)]
