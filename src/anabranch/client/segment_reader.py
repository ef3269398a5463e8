"""Reading one segment: request routing to the owning segment store, and event blocks with prefetch.

``SegmentRouter`` sends a request for a segment to the segment store that owns it (found with the
controller's ``getURI``, cached), retrying on ``WrongHost`` and lost connections under the client's retry policy.

``SegmentReader`` reads a segment from an offset: it keeps one ``ReadSegment`` in flight (prefetch,
``PREFETCH_BYTES`` at a time; at the tail the server long-polls), splits the returned bytes into events
(``[i32 0][i32 length][payload]``) per block — payloads are memoryview slices of the block, a partial
event at the end of a block waits for the next one. It honours an end offset (ending stream cut), skips
to the head when the segment is truncated, and reports the end of the segment when it is sealed and read
to its end, or deleted.

Invariants: ``offset`` is always at an event boundary; an event is returned once; no bytes past the end
offset are returned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from anabranch.client.connection import next_request_id
from anabranch.client.errors import ConnectionLostError, error_from_reply
from anabranch.client.tokens import TOKEN_EXPIRED_CODE, TokenCache
from anabranch.clock import wait_first
from anabranch.errors import AnabranchError, ConnectionFailedError, DataCorruptionError
from anabranch.model.names import ScopedSegment
from anabranch.protocol.commands import (
    AuthTokenCheckFailed,
    NoSuchSegment,
    ReadSegment,
    Reply,
    Request,
    SegmentIsSealed,
    SegmentIsTruncated,
    SegmentRead,
    WrongHost,
)
from anabranch.retry import RetryPolicy

log = logging.getLogger(__name__)

PREFETCH_BYTES = 2 * 1024 * 1024
EVENT_HEADER = struct.Struct(">ii")
READ_TIMEOUT = 40.0
"""Longer than the server's long-poll hold at the tail."""


class Connection(Protocol):
    async def request(self, cmd: Request, *, timeout: float = ...) -> Reply: ...


class ConnectionSource(Protocol):
    async def get(self, host: str, port: int) -> Connection: ...


Resolver = Callable[[str], Awaitable[tuple[str, int]]]
"""Segment name → (host, port) of the segment store that owns it."""


def controller_resolver(controller: object) -> Resolver:
    """A resolver asking ``controller.get_uri(scope, stream, segment_id)`` (the ControllerClient's signature)."""

    async def resolve(segment: str) -> tuple[str, int]:
        parsed = ScopedSegment.parse(segment)
        endpoint = await controller.get_uri(parsed.scope, parsed.stream, parsed.segment_id)  # type: ignore[attr-defined]
        return str(endpoint[0]), int(endpoint[1])

    return resolve


class SegmentRouter:
    """Sends requests to the segment store that owns a segment; re-resolves on WrongHost or a lost connection."""

    def __init__(self, resolve: Resolver, pool: ConnectionSource, *, policy: RetryPolicy | None = None,
                 delegation_token: str = "", tokens: TokenCache | None = None) -> None:
        self._resolve = resolve
        self._pool = pool
        self._endpoints: dict[str, tuple[str, int]] = {}
        self.policy = policy or RetryPolicy()
        self.delegation_token = delegation_token
        self.tokens = tokens
        """With credentials: puts each segment's stream token into every request, renewed on TOKEN_EXPIRED."""

    def invalidate(self, segment: str) -> None:
        self._endpoints.pop(segment, None)

    async def connection_for(self, segment: str) -> Connection:
        endpoint = self._endpoints.get(segment)
        if endpoint is None:
            endpoint = await self._resolve(segment)
            self._endpoints[segment] = endpoint
        return await self._pool.get(*endpoint)

    async def request(self, segment: str, build: Callable[[int], Request], *, timeout: float = 30.0) -> Reply:
        """``build(request_id)`` makes the request; a fresh id is used for each attempt (under the retry policy)."""
        backoff = self.policy.start()
        last: BaseException | None = None
        renew_token, renewals = False, 0
        while True:
            try:
                connection = await self.connection_for(segment)
                request = build(next_request_id())
                if self.tokens is not None and self.tokens.enabled and hasattr(request, "delegation_token"):
                    token = await self.tokens.for_segment(segment, refresh=renew_token)
                    request = dataclasses.replace(request, delegation_token=token)  # type: ignore[type-var]
                renew_token = False
                reply = await connection.request(request, timeout=timeout)
            except (ConnectionFailedError, OSError, TimeoutError) as exc:
                if not getattr(exc, "retriable", True):
                    raise
                last = exc
                log.debug("request for %s failed (attempt %d): %s", segment, backoff.attempts + 1, exc)
            except AnabranchError as exc:
                if not exc.retriable:
                    raise
                last = exc
                log.debug("resolving %s failed (attempt %d): %s", segment, backoff.attempts + 1, exc)
            else:
                if isinstance(reply, AuthTokenCheckFailed) and reply.error_code == TOKEN_EXPIRED_CODE \
                        and self.tokens is not None and self.tokens.enabled and renewals < 2:
                    renew_token, renewals = True, renewals + 1
                    log.debug("token for %s expired; renewing it", segment)
                    continue
                if not isinstance(reply, WrongHost):
                    return reply
                last = None
                log.debug("%s is not served by the cached segment store; resolving it again", segment)
            self.invalidate(segment)
            if not await backoff.wait():
                break
        raise ConnectionLostError(f"no segment store answered for {segment} after {backoff.describe()}"
                                  + (f": {last}" if last else " (WrongHost every time)"))


@dataclass(frozen=True, slots=True)
class EventBlock:
    """Events read from one segment in one go. ``offsets[i]`` is where event i starts; ``end`` follows the last."""

    segment: str
    events: list[bytes]
    offsets: list[int]
    end: int
    at_end_of_segment: bool = False


_PAYLOADS: dict[int, struct.Struct] = {}
"""``8x{n}s`` per event length n: extracts the payloads of equal-sized events in one ``iter_unpack``."""
_BULK_MIN_EVENTS = 16


def _equal_sized(data: bytes, length: int) -> tuple[list[bytes], int]:
    """The leading run of events of ``data`` when *all* its whole events have ``length`` payload bytes.

    Checks the headers of n events in 8 strided slices (one per header byte) instead of n unpacks; returns the
    payloads and the bytes they span, or ``([], 0)`` when the events differ (the caller parses one by one).
    """
    stride = length + 8
    count = len(data) // stride
    if count < _BULK_MIN_EVENTS:
        return [], 0
    stop = count * stride
    header = EVENT_HEADER.pack(0, length)
    for i in range(8):
        if data[i:stop:stride] != header[i:i + 1] * count:
            return [], 0
    unpacker = _PAYLOADS.get(length)
    if unpacker is None:
        if len(_PAYLOADS) >= 1024:
            _PAYLOADS.clear()
        unpacker = _PAYLOADS[length] = struct.Struct(f"8x{length}s")
    return [payload for (payload,) in unpacker.iter_unpack(memoryview(data)[:stop])], stop


def split_events(data: bytes, base: int) -> tuple[list[bytes], list[int], int]:
    """Complete events in ``data`` (which starts at segment offset ``base``); returns events, offsets, bytes used.

    Each event is sliced straight out of ``data`` into the ``bytes`` a reader hands out: one copy and one object
    per event, no intermediate memoryview. Blocks of equal-sized events (the common case) are split in bulk.
    """
    events: list[bytes] = []
    offsets: list[int] = []
    pos = 0
    size = len(data)
    unpack = EVENT_HEADER.unpack_from
    if size >= 8:
        kind, length = unpack(data, 0)
        if kind == 0 and length >= 0:
            events, pos = _equal_sized(data, length)
            if pos:
                offsets = list(range(base, base + pos, length + 8))
    add_event = events.append
    add_offset = offsets.append
    while size - pos >= 8:
        kind, length = unpack(data, pos)
        if kind != 0 or length < 0:
            raise DataCorruptionError(
                f"segment data at offset {base + pos} is not an event header (type {kind}, length {length})"
            )
        end = pos + 8 + length
        if end > size:
            break
        add_offset(base + pos)
        add_event(data[pos + 8 : end])
        pos = end
    return events, offsets, pos


class SegmentReader:
    """Reads the events of one segment from ``offset`` (up to ``end_offset`` if given)."""

    def __init__(self, router: SegmentRouter, segment: str, offset: int, end_offset: int | None = None,
                 *, prefetch: int = PREFETCH_BYTES) -> None:
        self.router = router
        self.segment = segment
        self.offset = offset
        """Where the next unreturned event starts."""
        self.end_offset = end_offset
        self.prefetch = prefetch
        self.truncated_bytes = 0
        """Bytes skipped because the segment was truncated past the read position."""
        self._fetch_offset = offset
        self._pending = b""
        self._inflight: asyncio.Task[Reply] | None = None
        self._ended = False

    @property
    def at_end(self) -> bool:
        """True once every event up to the end of the segment (or the end offset) was returned."""
        return self._ended

    def _start_fetch(self) -> None:
        if self._inflight is not None or self._ended:
            return
        length = self.prefetch
        if self.end_offset is not None:
            length = min(length, self.end_offset - self._fetch_offset)
        offset = self._fetch_offset
        token = self.router.delegation_token
        self._inflight = asyncio.ensure_future(self.router.request(
            self.segment, lambda rid: ReadSegment(self.segment, offset, length, token, rid), timeout=READ_TIMEOUT
        ))

    async def read_block(self, timeout: float | None = None) -> EventBlock:
        """The next events; an empty block if none arrived within ``timeout`` (None waits for data or the end)."""
        clock = self.router.policy.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            if self._ended:
                return EventBlock(self.segment, [], [], self.offset, True)
            if self.end_offset is not None and self.offset >= self.end_offset:
                self._finish()
                continue
            self._start_fetch()
            assert self._inflight is not None
            remaining = None if deadline is None else max(0.0, deadline - clock.monotonic())
            done = await wait_first(clock, {self._inflight}, remaining)
            if not done:
                return EventBlock(self.segment, [], [], self.offset)
            task, self._inflight = self._inflight, None
            block = self._handle(task.result())
            if block is not None:
                return block

    def _handle(self, reply: Reply) -> EventBlock | None:
        if isinstance(reply, SegmentRead):
            if reply.offset != self._fetch_offset:
                raise DataCorruptionError(
                    f"read of {self.segment} at {self._fetch_offset} answered for offset {reply.offset}"
                )
            return self._absorb(reply.data, reply.end_of_segment)
        if isinstance(reply, SegmentIsSealed):
            return self._absorb(b"", True)
        if isinstance(reply, SegmentIsTruncated):
            log.warning("%s was truncated at %d; skipping %d bytes from %d", self.segment, reply.start_offset,
                        reply.start_offset - self.offset, self.offset)
            self.truncated_bytes += max(0, reply.start_offset - self.offset)
            self.offset = self._fetch_offset = max(reply.start_offset, self.offset)
            self._pending = b""
            return None
        if isinstance(reply, NoSuchSegment):
            log.info("%s no longer exists; treating it as read to its end", self.segment)
            self._finish()
            return EventBlock(self.segment, [], [], self.offset, True)
        raise error_from_reply(reply, f"reading {self.segment}")

    def _absorb(self, data: bytes, end_of_segment: bool) -> EventBlock | None:
        self._fetch_offset += len(data)
        buffer = self._pending + data if self._pending else data
        if self.end_offset is not None and self.offset + len(buffer) > self.end_offset:
            buffer = buffer[: self.end_offset - self.offset]
        events, offsets, used = split_events(buffer, self.offset)
        self._pending = buffer[used:] if used < len(buffer) else b""
        self.offset += used
        reached_end = end_of_segment or (self.end_offset is not None and self.offset >= self.end_offset)
        if reached_end:
            if self._pending:
                raise DataCorruptionError(
                    f"{self.segment} ends with {len(self._pending)} bytes of an incomplete event at {self.offset}"
                )
            self._finish()
        else:
            self._start_fetch()
        if not events and not reached_end:
            return None
        return EventBlock(self.segment, events, offsets, self.offset, reached_end)

    def _finish(self) -> None:
        self._ended = True
        if self._inflight is not None:
            self._inflight.cancel()
            self._inflight = None

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)
            self._inflight = None
