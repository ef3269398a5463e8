"""``EventStreamReader``: one member of a reader group, reading the segments the group assigns to it.

The reader syncs with the group state every ``group_refresh_time`` (and whenever it has nothing to read or
has just finished a segment): it reports its positions, releases segments beyond its fair share, acquires
unassigned ones, and answers pending checkpoints (a checkpoint is returned as an ``EventRead`` with
``checkpoint_name`` set and no event; automatic checkpoints are silent). Each held segment has a
``SegmentReader`` with one block fetch in flight; events of a fetched block are handed out one by one from
memory. When a segment ends, the reader asks the controller for its successors and records the completion;
successors become readable only once all their predecessors are complete (the reducer enforces it). Segments
at an ending stream cut have no successors. Time windows (``current_time_window``) follow the watermarks of the
streams asked about, moved at each sync to the group's positions (``watermark_reader``).

Invariants: an event is returned at most once per assignment; positions reported to the group are always
event boundaries after returned events; a released segment is released at the position after the last
event this reader returned from it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Mapping
from itertools import repeat
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from anabranch.client.batch import BatchClient
from anabranch.client.errors import ClientClosedError
from anabranch.client.event_pointer import EventPointer, fetch_event
from anabranch.client.lag import Lag, segments_lag
from anabranch.client.reader_group_config import RETENTION_AUTOMATIC, Position, stream_cuts
from anabranch.client.reader_group_state import ReaderGroupState
from anabranch.client.segment_reader import EventBlock, SegmentReader
from anabranch.client.serializers import BytesSerializer
from anabranch.client.state_synchronizer import StateNotInitializedError
from anabranch.client.watermark_reader import ReaderWatermarks, TimeWindow
from anabranch.clock import wait_first
from anabranch.model.names import ScopedSegment

if TYPE_CHECKING:
    from anabranch.client.reader_group import ReaderGroup

log = logging.getLogger(__name__)

T = TypeVar("T")
AUTO_CHECKPOINT_PREFIX = "_auto-"
IDLE_POLL = 0.1
"""Seconds between group-state polls of a reader that holds no segment."""


class EventRead(Generic[T]):
    """One result of ``read_next_event``: an event, a checkpoint marker, or nothing (timeout / end).

    Treat it as read-only. One is built per event, so it is a plain slotted class and events read from a
    block build their ``position`` only when it is asked for.
    """

    __slots__ = ("_after", "_base", "_position", "checkpoint_name", "event", "offset", "segment")
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __init__(self, event: T | None, position: Position, checkpoint_name: str | None = None,
                 segment: ScopedSegment | None = None, offset: int = -1) -> None:
        self.event = event
        self._position: Position | None = position
        self._base: Mapping[ScopedSegment, int] = {}
        self._after = -1
        self.checkpoint_name = checkpoint_name
        self.segment = segment
        self.offset = offset
        """Where the event starts in its segment."""

    @property
    def position(self) -> Position:
        """The reader's position just after this event (every segment it held then)."""
        position = self._position
        if position is None:
            position = self._position = Position(self._base, self.segment, self._after)
        return position

    @property
    def is_checkpoint(self) -> bool:
        return self.checkpoint_name is not None

    @property
    def pointer(self) -> EventPointer | None:
        """Where this event lies, to fetch it again with ``StreamManager.read_event`` (None without an event)."""
        if self.segment is None or self.offset < 0:
            return None
        end = self.position.offsets[self.segment]
        return EventPointer(self.segment, self.offset, end - self.offset)

    def _key(self) -> tuple[Any, ...]:
        return self.event, self.position, self.checkpoint_name, self.segment, self.offset

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventRead) and self._key() == other._key()

    def __repr__(self) -> str:
        return (f"EventRead(event={self.event!r}, position={self.position!r}, checkpoint_name="
                f"{self.checkpoint_name!r}, segment={self.segment!r}, offset={self.offset!r})")


class _BlockEventRead(EventRead[T]):
    """An event handed out from a block: its ``Position`` is made from the block's shared snapshot on demand."""

    __slots__ = ()

    def __init__(self, event: T, base: dict[ScopedSegment, int], segment: ScopedSegment, offset: int,
                 after: int) -> None:
        self.event = event
        self._position = None
        self._base = base
        self._after = after
        self.checkpoint_name = None
        self.segment = segment
        self.offset = offset


class EventStreamReader(Generic[T]):
    """Reads events for one reader of a group. Use ``async with`` or ``close()`` (which takes it offline)."""

    def __init__(self, group: ReaderGroup, reader_id: str, serializer: Any) -> None:
        self.group = group
        self.reader_id = reader_id
        self.serializer: Any = serializer if serializer is not None else BytesSerializer()
        self._segments: dict[ScopedSegment, SegmentReader] = {}
        self._positions: dict[ScopedSegment, int] = {}
        self._snapshot: dict[ScopedSegment, int] | None = None
        """A copy of ``_positions`` shared by the Positions of a block's events; None when stale."""
        self._fetches: dict[ScopedSegment, asyncio.Task[EventBlock]] = {}
        self._ready: collections.deque[tuple[ScopedSegment, EventBlock]] = collections.deque()
        self._current: tuple[ScopedSegment, EventBlock] | None = None
        self._index = 0
        self._ended: set[ScopedSegment] = set()
        self._last_sync = float("-inf")
        self._sync_task: asyncio.Future[str | None] | None = None
        self._closed = False
        self._watermarks = ReaderWatermarks(((c.scope, c.stream) for c in group.config.starting_cuts),
                                            group.controller, group.router)

    @classmethod
    async def join(cls, group: ReaderGroup, reader_id: str, serializer: Any) -> EventStreamReader[Any]:
        reader: EventStreamReader[Any] = cls(group, reader_id, serializer)
        await group.synchronizer.update_state(lambda s: (s.add_reader(reader_id), None))
        return reader

    async def __aenter__(self) -> EventStreamReader[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> EventStreamReader[T]:
        return self

    async def __anext__(self) -> T:
        """Events until the group has read everything (ending stream cuts reached or streams sealed)."""
        while True:
            read = await self.read_next_event(timeout=self.group.config.group_refresh_time)
            if read.event is not None:
                return read.event
            if read.checkpoint_name is None and self._finished():
                raise StopAsyncIteration

    @property
    def position(self) -> Position:
        return Position(dict(self._positions))

    def current_time_window(self, scope: str, stream: str) -> TimeWindow:
        """Bounds on the times writers noted around this reader group's position in ``scope/stream``, as of this
        reader's last sync with the group. The first call for a stream starts following its watermarks and returns
        an unknown window; the reader then syncs at its next read."""
        window, added = self._watermarks.time_window(scope, stream)
        if added:
            self._last_sync = float("-inf")
        return window

    def _finished(self) -> bool:
        idle = not self._segments and self._current is None and not self._ready
        return idle and self.group.synchronizer.state.is_finished

    async def read_next_event(self, timeout: float = 10.0) -> EventRead[T]:
        """The next event, a checkpoint marker, or an empty ``EventRead`` after ``timeout`` seconds."""
        if self._closed:
            raise ClientClosedError(f"reader {self.reader_id} is closed")
        clock = self.group.clock
        start = clock.monotonic()
        refresh = self.group.config.group_refresh_time
        if self._current is not None and start - self._last_sync < refresh and self._sync_task is None:
            event = self._next_buffered()
            if event is not None:
                return event
        deadline = start + timeout
        while True:
            now = clock.monotonic()
            if (self._sync_task is not None or now - self._last_sync >= refresh
                    or (not self._segments and not self._has_buffered())):
                synced, checkpoint = await self._sync_within(deadline)
                if not synced:
                    return EventRead(None, self.position)
                if checkpoint is not None and not checkpoint.startswith(AUTO_CHECKPOINT_PREFIX):
                    return EventRead(None, self.position, checkpoint)
            event = self._next_buffered()
            if event is not None:
                return event
            await self._complete_drained()
            if self._finished():
                return EventRead(None, self.position)
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return EventRead(None, self.position)
            wait = min(remaining, max(0.0, self._last_sync + refresh - clock.monotonic()))
            await self._fill(wait if self._segments else min(remaining, IDLE_POLL))

    async def read_events(self, max_events: int = 1000, timeout: float = 10.0) -> list[EventRead[T]]:
        """Up to ``max_events`` results at once: waits like ``read_next_event`` for the first, then adds the
        events already buffered (no further waiting). A checkpoint marker or an empty result comes alone.

        The batch form of ``read_next_event`` for high-throughput consumers: one await per block of events.
        """
        first = await self.read_next_event(timeout)
        if first.event is None or max_events <= 1:
            return [first]
        return [first, *self._take_buffered(max_events - 1)]

    # --- buffered events ------------------------------------------------------------------------

    def _has_buffered(self) -> bool:
        return self._current is not None or bool(self._ready)

    def _next_buffered(self) -> EventRead[T] | None:
        taken = self._take_buffered(1)
        return taken[0] if taken else None

    def _take_buffered(self, limit: int) -> list[EventRead[T]]:
        """Up to ``limit`` buffered events, in order, a block at a time; positions move past each one taken."""
        out: list[EventRead[T]] = []
        deserialize: Callable[[bytes | memoryview], T] = self.serializer.deserialize
        raw = type(self.serializer) is BytesSerializer  # blocks hold bytes already: nothing to deserialize
        make = cast("Callable[..., EventRead[T]]", _BlockEventRead)
        while len(out) < limit:
            if self._current is None:
                if not self._ready:
                    break
                self._current, self._index = self._ready.popleft(), 0
                self._snapshot = None
            segment, block = self._current
            events, offsets, count = block.events, block.offsets, len(block.events)
            start = self._index
            stop = min(count, start + limit - len(out))
            if start >= stop:
                self._current = None
                continue
            base = self._snapshot
            if base is None:
                base = self._snapshot = dict(self._positions)
            taken: list[Any] = events[start:stop] if raw else list(map(deserialize, events[start:stop]))
            ends = offsets[start + 1:stop + 1]
            if stop == count:
                ends.append(block.end)
            out += map(make, taken, repeat(base), repeat(segment), offsets[start:stop], ends)
            self._index = stop
            self._positions[segment] = offsets[stop] if stop < count else block.end
        return out

    async def _fill(self, wait: float) -> None:
        """Waits up to ``wait`` seconds for blocks from the held segments and queues them."""
        for segment, reader in self._segments.items():
            if segment not in self._fetches and segment not in self._ended:
                self._fetches[segment] = asyncio.ensure_future(reader.read_block())
        if not self._fetches:
            await self.group.clock.sleep(wait)
            return
        done = await wait_first(self.group.clock, set(self._fetches.values()), wait)
        for segment, task in list(self._fetches.items()):
            if task in done:
                del self._fetches[segment]
                block = task.result()
                if block.events:
                    self._ready.append((segment, block))
                if block.at_end_of_segment:
                    self._ended.add(segment)
        await self._complete_drained()

    async def _complete_drained(self) -> None:
        """Records the completion of ended segments whose last events were all handed out."""
        for segment in list(self._ended):
            if not self._buffered_for(segment):
                await self._complete(segment)

    # --- group state ----------------------------------------------------------------------------

    async def _complete(self, segment: ScopedSegment) -> None:
        reader = self._segments.pop(segment)
        await reader.close()
        self._positions.pop(segment, None)
        self._snapshot = None
        self._ended.discard(segment)
        state = self.group.synchronizer.state
        successors: Mapping[ScopedSegment, list[ScopedSegment]] = {}
        if segment not in state.end_offsets:
            found = await self.group.controller.get_successors(segment.scope, segment.stream, segment.segment_id)
            successors = {
                ScopedSegment(segment.scope, segment.stream, s.segment.segment_id):
                    [ScopedSegment(segment.scope, segment.stream, p) for p in s.predecessors]
                for s in found
            }
        log.debug("reader %s finished %s; successors %s", self.reader_id, segment.qualified_name, list(successors))
        await self.group.synchronizer.update_state(
            lambda s: (s.segment_completed(self.reader_id, segment, successors), None)
        )
        self._last_sync = float("-inf")  # acquire the successors now, not at the next periodic sync

    async def _sync_within(self, deadline: float) -> tuple[bool, str | None]:
        """Runs a sync, or goes on waiting for the one a timed-out read left running; (done, checkpoint).

        A sync that outlasts the read's timeout (the servers are down and its requests are being retried) keeps
        running in the background, so the read returns on time; no event is handed out until it is done, since it
        may be releasing segments at the positions it reported.
        """
        task = self._sync_task
        if task is None:
            task = self._sync_task = asyncio.ensure_future(self._sync())
        remaining = max(0.0, deadline - self.group.clock.monotonic())
        done = await wait_first(self.group.clock, {task}, remaining)
        if not done:
            return False, None
        self._sync_task = None
        return True, task.result()

    async def _take_expired_offline(self, now_ms: int) -> None:
        """With a reader lease, take the readers that stopped syncing offline, so their segments are acquired."""
        lease = self.group.config.reader_lease
        if lease is None:
            return
        sync = self.group.synchronizer
        for reader in sync.state.expired_readers(now_ms, int(lease * 1000)):
            if reader != self.reader_id:
                log.warning("reader %s of %s/%s did not sync for %s s: taking it offline", reader, self.group.scope,
                            self.group.name, lease)

                def offline(state: ReaderGroupState, gone: str = reader) -> tuple[ReaderGroupState, None]:
                    return state.remove_reader(gone), None

                await sync.update_state(offline)

    async def _sync(self) -> str | None:
        """Reports positions, answers a pending checkpoint (returns its name), rebalances, starts automatic
        checkpoints (after rebalancing, so that frequent checkpoints cannot starve acquisition)."""
        await self._complete_drained()
        self._last_sync = self.group.clock.monotonic()
        sync = self.group.synchronizer
        await sync.fetch_updates()
        positions = dict(self._positions)
        leased = self.group.config.reader_lease is not None  # heartbeats only then: each one is a state write
        now_ms = int(self.group.clock.time() * 1000) if leased else None
        await sync.update_state(lambda s: (s.update_positions(self.reader_id, positions, now_ms=now_ms), None))
        if now_ms is not None:
            await self._take_expired_offline(now_ms)
        await self._watermarks.advance(sync.state.positions())
        checkpoint = sync.state.checkpoint_for(self.reader_id)
        if checkpoint is not None:
            await sync.update_state(lambda s: (s.checkpoint_reached(self.reader_id, checkpoint, positions), None))
            await self._acknowledge_if_completed(checkpoint)
        for _ in range(sync.state.segments_to_release(self.reader_id)):
            await self._release_one()
        taken = await sync.update_state(lambda s: s.acquire(self.reader_id))
        for segment, offset in taken.items():
            self._open(segment, offset, sync.state.end_offsets.get(segment))
        await self._maybe_auto_checkpoint()
        return checkpoint

    async def _acknowledge_if_completed(self, name: str) -> None:
        """With automatic consumption-based retention, the reader completing an automatic checkpoint acknowledges
        its stream cuts, so retention may truncate up to them (``initiate_checkpoint`` acknowledges the others)."""
        if self.group.config.retention != RETENTION_AUTOMATIC or not name.startswith(AUTO_CHECKPOINT_PREFIX):
            return
        completed = self.group.synchronizer.state.checkpoint(name)
        if completed is not None:
            await self.group.update_retention_stream_cut(stream_cuts(completed.positions).values())

    def _buffered_for(self, segment: ScopedSegment) -> bool:
        if self._current is not None and self._current[0] == segment and self._index < len(self._current[1].events):
            return True
        return any(s == segment for s, _ in self._ready)

    def _open(self, segment: ScopedSegment, offset: int, end: int | None) -> None:
        self._segments[segment] = SegmentReader(self.group.router, segment.qualified_name, offset, end)
        self._positions[segment] = offset
        self._snapshot = None

    async def _release_one(self) -> None:
        candidates = [s for s in self._segments if s not in self._ended]
        if not candidates:
            return
        segment = max(candidates, key=lambda s: (s.scope, s.stream, s.segment_id))
        offset = self._positions[segment]

        def release(state: ReaderGroupState) -> tuple[ReaderGroupState | None, bool]:
            if state.checkpoint_in_progress or segment not in state.segments_of(self.reader_id):
                return None, False
            return state.release(self.reader_id, segment, offset), True

        if await self.group.synchronizer.update_state(release):
            await self._drop(segment)

    async def _drop(self, segment: ScopedSegment) -> None:
        reader = self._segments.pop(segment)
        task = self._fetches.pop(segment, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await reader.close()
        self._positions.pop(segment, None)
        self._snapshot = None
        self._ready = collections.deque((s, b) for s, b in self._ready if s != segment)
        if self._current is not None and self._current[0] == segment:
            self._current = None

    async def _maybe_auto_checkpoint(self) -> None:
        interval = self.group.config.automatic_checkpoint_interval
        if not interval:
            return
        now_ms = int(self.group.clock.time() * 1000)
        name = f"{AUTO_CHECKPOINT_PREFIX}{now_ms}"

        def start(state: ReaderGroupState) -> tuple[ReaderGroupState | None, None]:
            last = max((int(c.name[len(AUTO_CHECKPOINT_PREFIX):]) for c in state.checkpoints
                        if c.name.startswith(AUTO_CHECKPOINT_PREFIX)), default=0)
            if state.checkpoint_in_progress or now_ms - last < interval * 1000:
                return None, None
            return state.create_checkpoint(name), None

        await self.group.synchronizer.update_state(start)

    async def lag(self, *, count_events: bool = True) -> Lag:
        """Exact events and bytes this reader has not returned yet in the segments it holds, from its live
        positions (fetched-but-unreturned events count as unread) to the segments' tails or end offsets."""
        batch = BatchClient(self.group.controller, self.group.router)
        return await segments_lag(batch, dict(self._positions), self.group.synchronizer.state.end_offsets,
                                  count_events=count_events)

    async def fetch_event(self, pointer: EventPointer) -> T:
        """The event at ``pointer`` (from this or any reader), deserialized with this reader's serializer."""
        deserialize: Callable[[bytes], T] = self.serializer.deserialize
        return deserialize(await fetch_event(self.group.router, pointer))

    async def close(self) -> None:
        """Takes the reader offline; its segments return to the group at the position after its last event."""
        if self._closed:
            return
        self._closed = True
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
            self._sync_task = None
        positions = dict(self._positions)
        for segment in list(self._segments):
            await self._drop(segment)
        try:
            await self.group.reader_offline(self.reader_id, Position(positions))
        except StateNotInitializedError:
            log.info("reader %s closed after its group %s/%s was deleted", self.reader_id, self.group.scope,
                     self.group.name)
