"""The request handler of one segment-store connection (spec §3, §4, §5, §8).

Takes the ``Request | Append`` items a ServerConnection decoded and writes replies to an ``Output``; no
sockets here, so it is tested by feeding commands and reading replies. Invariants:
- every reply echoes the request id of its request; Hello is answered at once (and the connection closed if
  the versions do not overlap), KeepAlive is echoed;
- requests run concurrently (one task per request, never per event); appends go through the
  :class:`AppendPipeline` (one store call per block, acks in order per writer);
- an error the protocol can report becomes its reply (spec §8.2); anything else is logged and closes this
  connection only;
- transient segments created on this connection are deleted when it closes unless they were merged;
- resources per connection are bounded: at most ``MAX_CONCURRENT_REQUESTS`` requests run at once (further ones
  wait, and reading from the socket pauses), replies that carry data reserve their size in a
  :class:`ReplyBudget` (reading also pauses while the send buffer is above its high-water mark), and append
  bytes waiting for the store are capped by ``MAX_INFLIGHT_BYTES``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from anabranch.auth.wire_auth import TOKEN_EXPIRED
from anabranch.errors import ProtocolError
from anabranch.model.names import transient_segment_name
from anabranch.protocol.codec import encode, encode_segment_read
from anabranch.protocol.commands import (
    OLDEST_COMPATIBLE_VERSION,
    WIRE_VERSION,
    AppendSetup,
    CreateSegment,
    CreateTableSegment,
    CreateTransientSegment,
    DeleteSegment,
    DeleteTableSegment,
    ErrorMessage,
    GetSegmentAttribute,
    GetStreamSegmentInfo,
    GetTableSegmentInfo,
    Hello,
    KeepAlive,
    LocateOffset,
    MergeSegments,
    MergeSegmentsBatch,
    OffsetLocated,
    ReadSegment,
    ReadTable,
    ReadTableEntries,
    ReadTableEntriesDelta,
    ReadTableKeys,
    RemoveTableKeys,
    Reply,
    Request,
    SealSegment,
    SegmentAttribute,
    SegmentAttributeUpdated,
    SegmentCreated,
    SegmentDeleted,
    SegmentPolicyUpdated,
    SegmentRead,
    SegmentSealed,
    SegmentTruncated,
    SetupAppend,
    StreamSegmentInfo,
    TruncateSegment,
    UpdateSegmentAttribute,
    UpdateSegmentPolicy,
    UpdateTableEntries,
)
from anabranch.protocol.validation import fit_reply, request_problem
from anabranch.protocol.validation import refusal as refusal_of
from anabranch.segmentstore.errors import ContainerClosedError
from anabranch.segmentstore.handler_appends import AppendPipeline
from anabranch.segmentstore.handler_errors import error_reply
from anabranch.segmentstore.handler_merges import MergeHistory, merge, merge_batch
from anabranch.segmentstore.handler_tables import TableRequest, handle_table_request
from anabranch.segmentstore.reply_budget import ReplyBudget
from anabranch.segmentstore.results import ReadResult

if TYPE_CHECKING:
    from anabranch.auth.wire_auth import WireAuthorizer
    from anabranch.protocol.server_connection import Append
    from anabranch.segmentstore.stats import SegmentStatsRecorder
    from anabranch.segmentstore.store import SegmentStore
    from anabranch.segmentstore.tables import TableStore
    from anabranch.storage.interfaces import Buffer

log = logging.getLogger(__name__)

MAX_READ_LENGTH = 2 * 1024 * 1024
MIN_READ_LENGTH = 8
MAX_INFLIGHT_BYTES = 32 * 1024 * 1024
"""Reading from the socket pauses while this many append bytes are waiting for the store."""
MAX_CONCURRENT_REQUESTS = 128
"""Requests (not appends) of one connection that run at once; tail reads waiting for data count too."""

_TABLE_REQUESTS = (
    CreateTableSegment,
    DeleteTableSegment,
    UpdateTableEntries,
    RemoveTableKeys,
    ReadTable,
    ReadTableKeys,
    ReadTableEntries,
    ReadTableEntriesDelta,
    GetTableSegmentInfo,
)


_TABLE_READS = (ReadTable, ReadTableKeys, ReadTableEntries, ReadTableEntriesDelta)
TABLE_PAGE_BYTES = 2 * 1024 * 1024
"""What a table read reserves in the reply budget (a page of entries is about this large at most)."""


class Output(Protocol):
    """Where a handler writes: the transport of its connection (or a test double)."""

    def write(self, frame: bytes | bytearray | memoryview) -> None: ...

    def close(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class ConnectionHandler:
    """Answers the requests of one connection."""

    def __init__(
        self,
        store: SegmentStore,
        tables: TableStore,
        output: Output,
        *,
        remove_writer: Callable[[uuid.UUID], None] = lambda _: None,
        tail_read_timeout: float = 20.0,
        peer: str = "?",
        max_inflight_bytes: int = MAX_INFLIGHT_BYTES,
        max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS,
        reply_budget: ReplyBudget | None = None,
        merges: MergeHistory | None = None,
        stats: SegmentStatsRecorder | None = None,
        auth: WireAuthorizer | None = None,
    ) -> None:
        self._store = store
        self._auth = auth
        self._stats = stats
        self._tables = tables
        self._output = output
        self._tail_read_timeout = tail_read_timeout
        self._merges = merges if merges is not None else MergeHistory()
        self._peer = peer
        self._max_inflight = max_inflight_bytes
        self._max_requests = max_concurrent_requests
        self.budget = reply_budget or ReplyBudget()
        self._pauses: set[str] = set()
        """Why reading from the socket is paused ("appends", "requests", "replies"); empty: reading."""
        self._waiting: deque[Awaitable[None]] = deque()
        """Requests beyond ``max_concurrent_requests``, started as running ones finish."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._transients: set[str] = set()
        self.closed = False
        self._appends = AppendPipeline(store, self.reply, self.fail, remove_writer, self._flow,
                                       stats.record_append if stats is not None else None)
        self._handlers: dict[type[Request], Callable[[Any], Awaitable[None]]] = {
            CreateTransientSegment: self._create_transient,
            ReadSegment: self._read_segment,
            GetStreamSegmentInfo: self._segment_info,
            CreateSegment: self._create_segment,
            SealSegment: self._seal,
            TruncateSegment: self._truncate,
            DeleteSegment: self._delete,
            UpdateSegmentPolicy: self._update_policy,
            MergeSegments: self._merge,
            MergeSegmentsBatch: self._merge_batch,
            GetSegmentAttribute: self._get_attribute,
            UpdateSegmentAttribute: self._update_attribute,
            LocateOffset: self._locate_offset,
        }

    # --- output ------------------------------------------------------------------------------

    def reply(self, reply: Reply) -> None:
        if not self.closed:
            self._output.write(self._encode(reply))

    def _encode(self, reply: Reply) -> bytes:
        """``reply``'s frame; a reply too long for the wire is shortened (text) or replaced by an error."""
        try:
            return encode(reply)
        except ProtocolError:
            pass
        try:
            return encode(fit_reply(reply))
        except ProtocolError as exc:
            request_id = getattr(reply, "request_id", -1)
            log.warning("reply %s to %s cannot be encoded (%s); answering with an error", type(reply).__name__,
                        self._peer, exc)
            return encode(fit_reply(ErrorMessage(
                request_id if isinstance(request_id, int) else -1, str(getattr(reply, "segment", "")),
                f"the {type(reply).__name__} reply exceeds the wire limits ({exc}); ask for less at once",
                ErrorMessage.ILLEGAL_ARGUMENT)))

    def fail(self, reason: str) -> None:
        """Close this connection because of ``reason`` (logged once)."""
        if not self.closed:
            log.warning("closing connection from %s: %s", self._peer, reason)
            self._close_output()

    def _close_output(self) -> None:
        self.closed = True
        self._output.close()

    def _pause(self, reason: str, paused: bool) -> None:
        """Pause reading from the socket for ``reason`` (or lift that reason); reading resumes when none is left."""
        if paused and reason not in self._pauses:
            self._pauses.add(reason)
            if len(self._pauses) == 1 and not self.closed:
                self._output.pause_reading()
        elif not paused and reason in self._pauses:
            self._pauses.discard(reason)
            if not self._pauses and not self.closed:
                self._output.resume_reading()

    def _flow(self, inflight_bytes: int) -> None:
        if inflight_bytes > self._max_inflight:
            self._pause("appends", True)
        elif inflight_bytes <= self._max_inflight // 2:
            self._pause("appends", False)

    def replies_backed_up(self, backed_up: bool) -> None:
        """The send buffer passed its high-water mark (True) or fell below its low-water mark (False)."""
        self.budget.set_paused(backed_up)
        self._pause("replies", backed_up)

    # --- input -------------------------------------------------------------------------------

    def handle_all(self, items: Iterable[Request | Append]) -> None:
        for item in items:
            if self.closed:
                return
            self.handle(item)

    def handle(self, item: Request | Append) -> None:
        if not isinstance(item, Request):
            self._appends.append(item)
        elif isinstance(item, Hello):
            self._hello(item)
        elif isinstance(item, KeepAlive):
            self.reply(KeepAlive())
        elif (problem := request_problem(item)) is not None:
            self.reply(refusal_of(item, problem))
        elif self._auth is not None and (refusal := self._auth.check(item)) is not None:
            self.reply(refusal)
            if isinstance(item, SetupAppend) and refusal.error_code == TOKEN_EXPIRED:
                self.fail("the writer's delegation token expired")
        elif isinstance(item, SetupAppend):
            self._setup_append(item)
        elif isinstance(item, _TABLE_REQUESTS):
            self._spawn(self._table_request(item))
        else:
            handler = self._handlers.get(type(item))
            if handler is None:
                self.fail(f"{type(item).__name__} is not a request the segment store serves")
            else:
                self._spawn(handler(item))

    def _hello(self, hello: Hello) -> None:
        self.reply(Hello(WIRE_VERSION, OLDEST_COMPATIBLE_VERSION))
        if hello.low_version > WIRE_VERSION or hello.high_version < OLDEST_COMPATIBLE_VERSION:
            self.fail(f"client wire versions {hello.low_version}..{hello.high_version} are incompatible")

    def _spawn(self, coro: Awaitable[None]) -> None:
        if len(self._tasks) >= self._max_requests:
            self._waiting.append(coro)
            self._pause("requests", True)
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._waiting and not self.closed:
            self._spawn(self._waiting.popleft())
        if not self._waiting:
            self._pause("requests", False)

    async def aclose(self) -> None:
        """The connection ended: stop its requests and delete the transient segments it left unmerged."""
        self.closed = True
        self._appends.close()
        self.budget.close()
        while self._waiting:
            waiting = self._waiting.popleft()
            if inspect.iscoroutine(waiting):
                waiting.close()
        for task in list(self._tasks):
            task.cancel()
        for name in sorted(self._transients):
            try:
                await self._store.delete(name)
            except Exception as exc:  # the segment may already be gone; nothing else to do
                log.debug("could not delete transient segment %s: %r", name, exc)
        self._transients.clear()

    async def _guard(self, request_id: int, segment: str, work: Awaitable[Reply | None], *, offset: int = -1,
                     report_against: str | None = None) -> None:
        """Await ``work`` and send its reply (None: it replied itself), or the reply for its error, or close."""
        try:
            reply = await work
        except asyncio.CancelledError:
            raise
        except ContainerClosedError as exc:
            self.fail(f"segment container unavailable: {exc}")
            return
        except Exception as exc:
            error = error_reply(exc, request_id, segment, offset, report_against=report_against)
            if error is None:
                log.error("request %d on %.200s from %s failed", request_id, segment, self._peer, exc_info=exc)
                self.reply(ErrorMessage(request_id, segment, f"internal error: {exc!r}", ErrorMessage.UNSPECIFIED))
                self.fail(f"request {request_id} on {segment[:200]!r} failed: {exc!r}")
                return
            reply = error
        if reply is not None:
            self.reply(reply)

    # --- appends -----------------------------------------------------------------------------

    def _setup_append(self, request: SetupAppend) -> None:
        state = self._appends.begin_setup(request.writer_id, request.segment)

        async def setup() -> None:
            try:
                last = await self._store.get_writer_event_number(request.segment, request.writer_id)
            except BaseException:
                self._appends.abandon_setup(state)
                raise
            self.reply(AppendSetup(request.request_id, request.segment, request.writer_id, last))
            self._appends.finish_setup(state, last)

        async def guarded() -> None:  # setup() is made only when this runs (a waiting request may be dropped)
            await self._guard(request.request_id, request.segment, setup())

        self._spawn(guarded())

    # --- segment requests --------------------------------------------------------------------

    async def _create_transient(self, request: CreateTransientSegment) -> None:
        async def work() -> Reply:
            await self._store.get_info(request.parent_segment)
            name = transient_segment_name(request.parent_segment, request.writer_id, uuid.uuid4())
            await self._store.create_segment(name)
            self._transients.add(name)
            return SegmentCreated(request.request_id, name)

        await self._guard(request.request_id, request.parent_segment, work())

    async def _read_segment(self, request: ReadSegment) -> None:
        """A tail read first waits for data without holding reply budget (reading one byte at most), then,
        like any read, reserves its reply size before the data is read."""
        length = min(MAX_READ_LENGTH, max(MIN_READ_LENGTH, request.suggested_length))

        async def work() -> Reply | None:
            try:
                info = await self._store.get_info(request.segment)
                if request.offset >= info.length and not info.sealed:
                    probe = await self._store.read(request.segment, request.offset, 1,
                                                   wait_timeout=self._tail_read_timeout)
                    if not probe.data:
                        return self._segment_read(request, probe.at_tail, probe.end_of_segment, b"")
                async with self.budget.reserve(length):
                    result = await self._store.read(request.segment, request.offset, length)
                    self._reply_read(request, result)
                    return None
            except ContainerClosedError:
                return self._segment_read(request, True, False, b"")

        await self._guard(request.request_id, request.segment, work(), offset=request.offset)

    def _reply_read(self, request: ReadSegment, result: ReadResult) -> None:
        """Send the read bytes as they are in the read index (views): the frame is only joined by the transport."""
        if self.closed:
            return
        try:
            parts = encode_segment_read(request.segment, request.offset, result.at_tail, result.end_of_segment,
                                        result.pieces, result.size, request.request_id)
        except ProtocolError:  # a name or length past the wire limits: the checked path shortens or refuses it
            self.reply(self._segment_read(request, result.at_tail, result.end_of_segment, result.data))
            return
        for part in parts:
            self._output.write(part)

    @staticmethod
    def _segment_read(request: ReadSegment, at_tail: bool, end: bool, data: Buffer) -> SegmentRead:
        return SegmentRead(request.segment, request.offset, at_tail, end, bytes(data), request.request_id)

    async def _segment_info(self, request: GetStreamSegmentInfo) -> None:
        async def work() -> Reply:
            info = await self._store.get_info(request.segment_name)
            return StreamSegmentInfo(
                request.request_id, request.segment_name, True, info.sealed, False, info.last_modified_ms,
                info.length, info.start_offset,
            )

        await self._guard(request.request_id, request.segment_name, work())

    async def _create_segment(self, request: CreateSegment) -> None:
        async def work() -> Reply:
            await self._store.create_segment(
                request.segment, scale_type=request.scale_type, target_rate=request.target_rate,
                rollover_size=max(0, request.rollover_size_bytes),
            )
            if self._stats is not None:
                self._stats.record_create(request.segment, request.scale_type, request.target_rate)
            return SegmentCreated(request.request_id, request.segment)

        await self._guard(request.request_id, request.segment, work())

    async def _seal(self, request: SealSegment) -> None:
        async def work() -> Reply:
            await self._store.seal(request.segment)
            if self._stats is not None:
                self._stats.record_seal(request.segment)
            return SegmentSealed(request.request_id, request.segment)

        await self._guard(request.request_id, request.segment, work())

    async def _truncate(self, request: TruncateSegment) -> None:
        async def work() -> Reply:
            await self._store.truncate(request.segment, request.truncation_offset)
            return SegmentTruncated(request.request_id, request.segment)

        await self._guard(request.request_id, request.segment, work(), offset=request.truncation_offset)

    async def _delete(self, request: DeleteSegment) -> None:
        async def work() -> Reply:
            await self._store.delete(request.segment)
            if self._stats is not None:
                self._stats.record_delete(request.segment)
            self._tables.forget(request.segment)
            self._transients.discard(request.segment)
            return SegmentDeleted(request.request_id, request.segment)

        await self._guard(request.request_id, request.segment, work())

    async def _update_policy(self, request: UpdateSegmentPolicy) -> None:
        async def work() -> Reply:
            await self._store.update_policy(request.segment, request.scale_type, request.target_rate)
            if self._stats is not None:
                self._stats.record_policy(request.segment, request.scale_type, request.target_rate)
            return SegmentPolicyUpdated(request.request_id, request.segment)

        await self._guard(request.request_id, request.segment, work())

    async def _merge(self, request: MergeSegments) -> None:
        async def work() -> Reply:
            reply = await merge(self._store, self._tables, self._merges, request)
            if self._stats is not None:
                self._stats.record_transaction_merge(request.target, request.source)
            self._transients.discard(request.source)
            return reply

        await self._guard(request.request_id, request.source, work(), report_against=request.source)

    async def _merge_batch(self, request: MergeSegmentsBatch) -> None:
        async def work() -> Reply:
            reply = await merge_batch(self._store, self._tables, self._merges, request)
            if self._stats is not None:
                for source in request.sources:
                    self._stats.record_transaction_merge(request.target, source)
            self._transients.difference_update(request.sources)
            return reply

        await self._guard(request.request_id, request.target, work())

    async def _get_attribute(self, request: GetSegmentAttribute) -> None:
        async def work() -> Reply:
            value = await self._store.get_attribute(request.segment_name, request.attribute_id)
            return SegmentAttribute(request.request_id, value)

        await self._guard(request.request_id, request.segment_name, work())

    async def _update_attribute(self, request: UpdateSegmentAttribute) -> None:
        async def work() -> Reply:
            ok = await self._store.update_attributes(
                request.segment_name, [(request.attribute_id, request.new_value, request.expected_value)]
            )
            return SegmentAttributeUpdated(request.request_id, ok)

        await self._guard(request.request_id, request.segment_name, work())

    async def _locate_offset(self, request: LocateOffset) -> None:
        """The target offset clamped to [start offset, length] (events are not parsed)."""

        async def work() -> Reply:
            info = await self._store.get_info(request.segment)
            offset = min(max(request.target_offset, info.start_offset), info.length)
            return OffsetLocated(request.request_id, request.segment, offset)

        await self._guard(request.request_id, request.segment, work())

    async def _table_request(self, request: TableRequest) -> None:
        segment = request.segment_name if isinstance(request, GetTableSegmentInfo) else request.segment
        offset = request.table_segment_offset if isinstance(request, UpdateTableEntries | RemoveTableKeys) else -1
        if isinstance(request, _TABLE_READS):
            async with self.budget.reserve(TABLE_PAGE_BYTES):
                await self._guard(request.request_id, segment, handle_table_request(self._tables, request))
        else:
            await self._guard(request.request_id, segment, handle_table_request(self._tables, request),
                              offset=offset)
