"""``EventStreamWriter``: events → segments by routing key, batched, acked per block, following scaling.

Owns the key → segment map of one stream (``StreamSegments``) and one ``SegmentWriter`` per
segment it writes to. A routing key always lands in the segment whose range holds its hash, so
events with one key keep their order; events without a key go to a random segment.

When a segment is sealed (scale), its writer hands back every unacked event in order; the
successors replace it in the map and the events are re-added to them *before* any later event
for the same keys, so per-key order survives a scale. An empty successor list means the stream
was sealed: pending and later writes fail with ``StreamSealedError``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Iterable
from typing import Any, Generic, TypeVar

from anabranch.client.errors import ClientClosedError, StreamSealedError
from anabranch.client.hashing import StreamSegments, hash_routing_key
from anabranch.client.segment_writer import Block, ClientContext, SegmentWriter
from anabranch.client.serializers import Serializer, default_serializer
from anabranch.model.names import qualified_segment_name

log = logging.getLogger(__name__)
T = TypeVar("T")
_KEY_CACHE_LIMIT = 1 << 20


def chain_future(target: asyncio.Future[None], sources: Iterable[asyncio.Future[None]]) -> None:
    """Complete ``target`` when every source is done (with the first failure, if any)."""
    pending = set(sources)
    if not pending:
        if not target.done():
            target.set_result(None)
        return
    gathered = asyncio.gather(*pending, return_exceptions=True)

    def done(all_done: asyncio.Future[list[Any]]) -> None:
        if target.done():
            return
        errors = [r for r in all_done.result() if isinstance(r, BaseException)]
        if errors:
            target.set_exception(errors[0])
        else:
            target.set_result(None)

    gathered.add_done_callback(done)


class EventStreamWriter(Generic[T]):
    """Writes events to one stream. ``await write_event(...)`` queues an event and returns its block's future.

    Await the returned future for that event's ack, or call ``flush()`` to wait for all of them.
    """

    def __init__(self, context: ClientContext, scope: str, stream: str, serializer: Serializer[T] | None = None,
                 *, owned_context: bool = False) -> None:
        self.context = context
        self.scope = scope
        self.stream = stream
        self.serializer = serializer
        self.writer_name = str(uuid.uuid4())
        self._owned_context = owned_context
        self._segments: StreamSegments | None = None
        self._writers: dict[int, SegmentWriter] = {}
        self._key_positions: dict[str, float] = {}
        self._key_writers: dict[str, SegmentWriter] = {}
        self._reroute_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        self._closed = False

    async def __aenter__(self) -> EventStreamWriter[T]:
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        await self.close(flush=exc_type is None)

    async def _load_segments(self) -> StreamSegments:
        current = await self.context.controller.get_current_segments(self.scope, self.stream)
        if not current:
            raise StreamSealedError(f"stream {self.scope}/{self.stream} is sealed")
        self._segments = StreamSegments(current)
        return self._segments

    def _position(self, routing_key: str | None) -> float | None:
        if routing_key is None:
            return None
        position = self._key_positions.get(routing_key)
        if position is None:
            if len(self._key_positions) >= _KEY_CACHE_LIMIT:
                self._key_positions.clear()
            position = self._key_positions[routing_key] = hash_routing_key(routing_key)
        return position

    def _writer_for(self, segments: StreamSegments, position: float | None) -> SegmentWriter:
        segment = segments.segment_for_position(random.random() if position is None else position)
        writer = self._writers.get(segment.segment_id)
        if writer is None:
            writer = SegmentWriter(self.context, self.scope, self.stream, segment.segment_id,
                                   qualified_segment_name(self.scope, self.stream, segment.segment_id),
                                   on_sealed=self._on_sealed)
            self._writers[segment.segment_id] = writer
        return writer

    async def _route(self, routing_key: str | None) -> SegmentWriter:
        """Slow path: the writer for a key not cached yet (or for an event without a key)."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ClientClosedError("the writer is closed")
        segments = self._segments or await self._load_segments()
        writer = self._writer_for(segments, self._position(routing_key))
        if routing_key is not None:
            if len(self._key_writers) >= _KEY_CACHE_LIMIT:
                self._key_writers.clear()
            self._key_writers[routing_key] = writer
        return writer

    def _payload(self, event: Any) -> bytes:
        serializer = self.serializer
        if serializer is None:
            if isinstance(event, bytes):
                return event
            serializer = default_serializer(event)
        return serializer.serialize(event)

    def write_event(self, event: T, routing_key: str | None = None) -> Awaitable[asyncio.Future[None]]:
        """Queue ``event``; ``await`` the result for the future that completes when the event is durable.

        ``await writer.write_event(e, key)`` waits only when the writer is backlogged (backpressure). For a routing
        key seen before and a ``bytes`` event without a serializer, no coroutine is made: the result is a future,
        already done, shared by the events of one block.
        """
        writer = self._key_writers.get(routing_key) if routing_key is not None else None  # type: ignore[arg-type]
        if writer is None or type(event) is not bytes or self.serializer is not None:
            return self._write_routed(event, routing_key)
        writer.add(event, routing_key)  # type: ignore[arg-type]  # checked: bytes
        if writer.backlogged:
            return self._after_space(writer, writer.queued)
        return writer.queued

    async def _write_routed(self, event: T, routing_key: str | None) -> asyncio.Future[None]:
        writer = await self._route(routing_key)
        future = writer.add(self._payload(event), routing_key)
        if writer.backlogged:
            await writer.wait_for_space()
        return future

    @staticmethod
    async def _after_space(writer: SegmentWriter, queued: asyncio.Future[asyncio.Future[None]]) -> asyncio.Future[None]:
        await writer.wait_for_space()
        return queued.result()

    async def write_events(self, events: Iterable[T], routing_key: str | None = None) -> asyncio.Future[None]:
        """Queue several events with one routing key (or none: then all go to one segment chosen at random), in
        order; returns one future for all of them. Routing and backpressure apply once per call, not per event."""
        writer = (self._key_writers.get(routing_key) if routing_key is not None else None) or \
            await self._route(routing_key)
        serializer = self.serializer
        if serializer is None:
            payloads: list[bytes] = [e if type(e) is bytes else self._payload(e) for e in events]  # type: ignore[misc]
        else:
            payloads = [serializer.serialize(e) for e in events]
        futures = writer.add_many(payloads, routing_key)
        if writer.backlogged:
            await writer.wait_for_space()
        if len(futures) == 1:
            return futures[0]
        combined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        chain_future(combined, futures)
        return combined

    async def flush(self) -> None:
        """Wait until every event written so far is acknowledged (re-routed ones included)."""
        first_error: BaseException | None = None
        while True:
            futures = [f for w in list(self._writers.values()) for f in w.flush_nowait()]
            tasks = list(self._tasks)
            if not futures and not tasks:
                break
            results = await asyncio.gather(*futures, *tasks, return_exceptions=True)
            first_error = first_error or next((r for r in results if isinstance(r, BaseException)), None)
        if self._error is not None:
            raise self._error
        if first_error is not None:
            raise first_error

    async def note_time(self, timestamp: int) -> bool:
        """Tell the controller this writer has written everything up to ``timestamp`` (watermarks)."""
        position = {sid: max(w.write_offset, 0) for sid, w in self._writers.items()}
        return await self.context.controller.note_timestamp_from_writer(
            self.writer_name, self.scope, self.stream, timestamp, position)

    async def close(self, *, flush: bool = True) -> None:
        if self._closed:
            return
        try:
            if flush and self._error is None:
                await self.flush()
        finally:
            self._closed = True
            for writer in list(self._writers.values()):
                await writer.close()
            self._writers.clear()
            if self._owned_context:
                await self.context.pool.close()
                await self.context.controller.close()

    def statistics(self) -> dict[str, Any]:
        return {"segments": [w.statistics() for w in self._writers.values()], "time": time.time()}

    # ---- scaling ----

    def _on_sealed(self, writer: SegmentWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._reroute(writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reroute(self, sealed: SegmentWriter) -> None:
        async with self._reroute_lock:
            try:
                successors = await self.context.controller.get_successors(self.scope, self.stream, sealed.segment_id)
            except Exception as exc:
                log.warning("cannot find successors of %s: %r", sealed.segment_name, exc)
                self._fail_blocks(sealed.take_unacked(), exc)
                if getattr(exc, "retriable", False):
                    self._forget_segments()
                else:
                    self._error = exc
                await sealed.close()
                return
            blocks = sealed.take_unacked()
            self._key_writers.clear()
            if self._writers.get(sealed.segment_id) is sealed:
                del self._writers[sealed.segment_id]
            if not successors:
                exc2 = StreamSealedError(f"stream {self.scope}/{self.stream} is sealed")
                self._error = exc2
                self._fail_blocks(blocks, exc2)
                await sealed.close()
                return
            assert self._segments is not None
            old = next((s for s in self._segments.segments if s.segment_id == sealed.segment_id), None)
            low, high = (old.min_key, old.max_key) if old is not None else (0.0, 1.0)
            self._segments = segments = self._segments.replace(sealed.segment_id, [s.segment for s in successors])
            self._key_writers.clear()
            for block in blocks:
                self._readd(segments, block, low, high)
            log.debug("re-routed %d blocks of sealed %s to %d successors", len(blocks), sealed.segment_name,
                      len(successors))
            await sealed.close()

    def _forget_segments(self) -> None:
        """Drop the key → segment map so the next event asks the controller for the current segments."""
        self._segments = None
        self._key_writers.clear()
        for segment_id, writer in list(self._writers.items()):
            if writer.sealed:
                del self._writers[segment_id]

    def _readd(self, segments: StreamSegments, block: Block, low: float, high: float) -> None:
        targets: set[asyncio.Future[None]] = set()
        for payload, key in zip(block.payloads(), block.keys, strict=True):
            position = self._position(key)
            spot = position if position is not None else low + random.random() * (high - low)
            targets.add(self._writer_for(segments, spot).add(payload, key))
        chain_future(block.handle, targets)

    @staticmethod
    def _fail_blocks(blocks: list[Block], exc: BaseException) -> None:
        for block in blocks:
            if not block.handle.done():
                block.handle.set_exception(exc)
