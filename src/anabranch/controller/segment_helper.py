"""The controller's view of the segment store: stream-segment admin and table segments over the wire protocol.

``SegmentStoreOps`` is the interface the workflows use; ``SegmentHelper`` implements it with
``anabranch.client.connection.RawConnection`` (one multiplexed connection per segment store, re-opened on loss;
``SegmentRouter`` says which segment store holds each segment: a fixed one, or in a cluster the owner of the
segment's container), an in-memory
implementation lives in ``segment_helper_memory``. Every operation is idempotent where Pravega's
workflows need it to be: creating an existing segment, sealing a sealed one and deleting a missing one
succeed. Error replies become typed exceptions from ``controller.errors``; connection loss, timeouts
and WrongHost (a container still recovering) are retried under ``SEGMENT_STORE_RETRY`` (the shared
``anabranch.retry`` policy: exponential backoff with jitter, bounded in time).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from anabranch.client.connection import RawConnection, next_request_id
from anabranch.controller.errors import (
    BadOffsetError,
    NoSuchSegmentError,
    SegmentExistsError,
    SegmentSealedError,
    SegmentStoreArgumentError,
    SegmentStoreError,
    SegmentStoreUnavailableError,
    TableNotEmptyError,
    UnexpectedReplyError,
    WriteConflictError,
)
from anabranch.errors import AnabranchError
from anabranch.protocol import commands as c
from anabranch.protocol.reply_errors import ReplyErrorKind as Kind
from anabranch.protocol.reply_errors import classify
from anabranch.retry import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")
SEGMENT_STORE_RETRY = RetryPolicy(initial_delay=0.05, max_delay=2.0, budget=60.0)
"""How long the controller keeps retrying one segment-store request (a container may be moving)."""

TableEntryTuple = tuple[bytes, bytes, int]
"""(key, value, version) of one table entry."""


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    name: str
    length: int
    start_offset: int
    sealed: bool


class SegmentStoreOps(Protocol):
    """What the controller asks of the segment store."""

    async def create_segment(self, name: str, scale_type: int = 0, target_rate: int = 0,
                             rollover_size_bytes: int = 0) -> None: ...

    async def seal_segment(self, name: str) -> None: ...

    async def truncate_segment(self, name: str, offset: int) -> None: ...

    async def delete_segment(self, name: str) -> None: ...

    async def update_segment_policy(self, name: str, scale_type: int, target_rate: int) -> None: ...

    async def merge_segments_batch(self, target: str, sources: Sequence[str]) -> list[int]: ...

    async def get_segment_info(self, name: str) -> SegmentInfo: ...

    async def read_segment(self, name: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer at the tail; never waits for new data)."""
        ...

    async def create_table(self, name: str, key_length: int = 0) -> bool:
        """Create the table segment; False if it exists already."""
        ...

    async def delete_table(self, name: str, must_be_empty: bool = False) -> None: ...

    async def update_table(self, name: str, entries: Sequence[TableEntryTuple]) -> list[int]: ...

    async def remove_keys(self, name: str, keys: Sequence[tuple[bytes, int]]) -> None: ...

    async def read_table(self, name: str, keys: Sequence[bytes]) -> list[tuple[bytes, int] | None]: ...

    async def read_entries(self, name: str, token: bytes, count: int) -> tuple[list[TableEntryTuple], bytes]: ...

    async def close(self) -> None: ...


async def iterate_entries(ops: SegmentStoreOps, name: str, page: int = 500) -> AsyncIterator[TableEntryTuple]:
    """Every live entry of a table segment (pages until an empty page)."""
    token = b""
    while True:
        entries, token = await ops.read_entries(name, token, page)
        if not entries:
            return
        for entry in entries:
            yield entry


def raise_for_reply(reply: c.WireCommand, segment: str) -> None:
    """Turn a wire error reply into the matching exception (no-op for other replies); what a reply means comes
    from the table shared with the client (``anabranch.protocol.reply_errors``)."""
    found = classify(reply)
    if found is None or found.kind is Kind.WRONG_HOST:
        return
    kind, name = found.kind, found.segment or segment
    if kind is Kind.NO_SUCH_SEGMENT:
        raise NoSuchSegmentError(name, "no such segment")
    if kind is Kind.SEGMENT_EXISTS:
        raise SegmentExistsError(name, "segment already exists")
    if kind is Kind.SEGMENT_SEALED:
        raise SegmentSealedError(name, "segment is sealed")
    if kind is Kind.SEGMENT_TRUNCATED:
        raise BadOffsetError(name, f"offset {found.offset} outside [{found.start_offset}, end]")
    if kind is Kind.TABLE_NOT_EMPTY:
        raise TableNotEmptyError(name, "table segment is not empty")
    if kind in (Kind.KEY_BAD_VERSION, Kind.KEY_DOES_NOT_EXIST):
        raise WriteConflictError(f"conditional table update failed on {segment}: {type(reply).__name__}")
    if kind is Kind.ILLEGAL_ARGUMENT:
        raise SegmentStoreArgumentError(segment, f"segment store refused an argument: {found.detail}")
    if kind is Kind.SERVER_ERROR:
        raise SegmentStoreError(segment, f"segment store error: {found.detail}")
    if kind is Kind.TOKEN_REJECTED:
        raise SegmentStoreError(segment, f"the segment store refused the controller's system token "
                                         f"({found.detail}): give the "
                                         f"controller and its segment stores the same --token-signing-key-file")
    if kind is Kind.UNSUPPORTED:
        raise SegmentStoreError(segment, f"segment store refused {type(reply).__name__}")


class _WrongHost(AnabranchError):
    retriable = True


Endpoint = tuple[str, int]


class SegmentRouter(Protocol):
    """Where each segment's container runs: one fixed segment store, or the owner named by a cluster's map."""

    def endpoint_for(self, segment: str) -> Endpoint | None:
        """The segment store to ask about ``segment`` (None: no owner right now; retried after ``refresh``)."""
        ...

    async def refresh(self) -> None:
        """Re-read where containers run (after a WrongHost or a lost connection)."""
        ...


@dataclass(frozen=True, slots=True)
class FixedRoute:
    """Every segment on one segment store (standalone, and a controller given ``--segmentstore``)."""

    host: str
    port: int

    def endpoint_for(self, segment: str) -> Endpoint | None:
        return self.host, self.port

    async def refresh(self) -> None:
        return None


class SegmentStoreConnection(Protocol):
    """What the helper needs of a connection: ``RawConnection`` (TCP), or an in-process one
    (``anabranch.segmentstore.local_connection``)."""

    closed: bool

    async def request(self, cmd: c.Request, *, timeout: float = 30.0) -> c.Reply: ...

    async def close(self) -> None: ...


Connect = Callable[[str, int], Awaitable[SegmentStoreConnection]]
"""Opens a connection to the segment store at ``host, port``."""


def _read_segment(name: str, offset: int, length: int, request_id: int, token: str) -> c.ReadSegment:
    return c.ReadSegment(name, offset, length, token, request_id)


class SegmentHelper:
    """``SegmentStoreOps`` over the wire protocol: one multiplexed connection per segment store, each request sent
    to the one ``router`` names for its segment (by default the fixed ``host:port``). ``connect`` replaces the TCP
    connection, e.g. by an in-process one when the segment store runs in this process (a standalone); the requests,
    replies and retries stay the same."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, attempts: int | None = None,
                 retry: RetryPolicy = SEGMENT_STORE_RETRY,
                 ssl_context: ssl.SSLContext | None = None, token: Callable[[], str] | None = None,
                 router: SegmentRouter | None = None, connect: Connect | None = None) -> None:
        self.host = host
        self.token = token
        """The controller's system token for every request (None: send none, for a segment store without auth)."""
        self.port = port
        self.router: SegmentRouter = router or FixedRoute(host, port)
        self.timeout = timeout
        self.retry = replace(retry, max_attempts=attempts) if attempts is not None else retry
        self.ssl_context = ssl_context
        self._connect: Connect = connect or self._connect_tcp
        self._conns: dict[Endpoint, SegmentStoreConnection] = {}
        self._locks: dict[Endpoint, asyncio.Lock] = {}

    async def _connect_tcp(self, host: str, port: int) -> SegmentStoreConnection:
        return await RawConnection.connect(host, port, timeout=self.timeout, ssl_context=self.ssl_context)

    async def _connection(self, segment: str) -> SegmentStoreConnection:
        endpoint = self.router.endpoint_for(segment)
        if endpoint is None:
            raise _WrongHost(f"no segment store owns the container of {segment} right now")
        conn = self._conns.get(endpoint)
        if conn is not None and not conn.closed:  # the usual case: no lock needed to use an open connection
            return conn
        lock = self._locks.get(endpoint)
        if lock is None:
            lock = self._locks[endpoint] = asyncio.Lock()
        async with lock:
            conn = self._conns.get(endpoint)
            if conn is None or conn.closed:
                conn = self._conns[endpoint] = await self._connect(*endpoint)
            return conn

    async def _drop(self, conn: SegmentStoreConnection | None) -> None:
        if conn is None:
            return
        for endpoint, known in list(self._conns.items()):
            if known is conn:
                del self._conns[endpoint]
        try:
            await conn.close()
        except Exception:
            log.debug("closing broken segment store connection failed", exc_info=True)

    async def _refresh_route(self) -> None:
        try:
            await self.router.refresh()
        except Exception as exc:
            log.debug("could not re-read where containers run: %r", exc)

    async def _request(self, make: Callable[[int, str], Any], segment: str) -> c.WireCommand:
        """Send ``make(request_id, token)`` to the segment's owner and return the reply, retrying on connection loss and
        WrongHost (after re-reading where the container runs)."""
        backoff = self.retry.start()
        last: BaseException | None = None
        while True:
            conn = None
            try:
                conn = await self._connection(segment)
                request = make(next_request_id(), "" if self.token is None else self.token())
                reply = await conn.request(request, timeout=self.timeout)
                if isinstance(reply, c.WrongHost):
                    raise _WrongHost(f"segment store does not own {segment} (yet)")
                return reply
            except (OSError, TimeoutError, asyncio.IncompleteReadError, EOFError) as exc:
                last = exc
                await self._drop(conn)
                await self._refresh_route()
            except AnabranchError as exc:
                if not exc.retriable:
                    raise
                last = exc
                if not isinstance(exc, _WrongHost):
                    await self._drop(conn)
                await self._refresh_route()
            if not await backoff.wait():
                break
        where = self.router.endpoint_for(segment)
        store = f"{where[0]}:{where[1]}" if where is not None else "(no owner)"
        raise SegmentStoreUnavailableError(
            f"segment store {store} unavailable for {segment} after {backoff.describe()}: {last}"
        )

    async def close(self) -> None:
        for conn in list(self._conns.values()):
            await self._drop(conn)

    async def create_segment(self, name: str, scale_type: int = 0, target_rate: int = 0,
                             rollover_size_bytes: int = 0) -> None:
        reply = await self._request(
            lambda rid, token: c.CreateSegment(rid, name, target_rate, scale_type, token, rollover_size_bytes), name)
        if isinstance(reply, c.SegmentAlreadyExists):
            return
        self._expect(reply, c.SegmentCreated, name)

    async def seal_segment(self, name: str) -> None:
        reply = await self._request(lambda rid, token: c.SealSegment(rid, name, token), name)
        if isinstance(reply, c.SegmentIsSealed):
            return
        self._expect(reply, c.SegmentSealed, name)

    async def truncate_segment(self, name: str, offset: int) -> None:
        reply = await self._request(lambda rid, token: c.TruncateSegment(rid, name, offset, token), name)
        self._expect(reply, c.SegmentTruncated, name)

    async def delete_segment(self, name: str) -> None:
        reply = await self._request(lambda rid, token: c.DeleteSegment(rid, name, token), name)
        if isinstance(reply, c.NoSuchSegment):
            return
        self._expect(reply, c.SegmentDeleted, name)

    async def update_segment_policy(self, name: str, scale_type: int, target_rate: int) -> None:
        reply = await self._request(
            lambda rid, token: c.UpdateSegmentPolicy(rid, name, target_rate, scale_type, token), name)
        self._expect(reply, c.SegmentPolicyUpdated, name)

    async def merge_segments_batch(self, target: str, sources: Sequence[str]) -> list[int]:
        reply = await self._request(lambda rid, token: c.MergeSegmentsBatch(rid, target, tuple(sources), token), target)
        merged = self._expect(reply, c.SegmentsBatchMerged, target)
        return [offset for _, offset in merged.results]

    async def get_segment_info(self, name: str) -> SegmentInfo:
        reply = await self._request(lambda rid, token: c.GetStreamSegmentInfo(rid, name, token), name)
        info = self._expect(reply, c.StreamSegmentInfo, name)
        if not info.exists or info.is_deleted:
            raise NoSuchSegmentError(name, "no such segment")
        return SegmentInfo(name, info.write_offset, info.start_offset, info.is_sealed)

    async def read_segment(self, name: str, offset: int, length: int) -> bytes:
        data = b""
        while len(data) < length:
            at, wanted = offset + len(data), length - len(data)
            reply = await self._request(functools.partial(_read_segment, name, at, wanted), name)
            read = self._expect(reply, c.SegmentRead, name)
            data += read.data
            if not read.data or read.at_tail or read.end_of_segment:
                break
        return data[:length]

    async def create_table(self, name: str, key_length: int = 0) -> bool:
        reply = await self._request(lambda rid, token: c.CreateTableSegment(rid, name, token, False, key_length), name)
        if isinstance(reply, c.SegmentAlreadyExists):
            return False
        self._expect(reply, c.SegmentCreated, name)
        return True

    async def delete_table(self, name: str, must_be_empty: bool = False) -> None:
        reply = await self._request(lambda rid, token: c.DeleteTableSegment(rid, name, must_be_empty, token), name)
        if isinstance(reply, c.NoSuchSegment):
            return
        self._expect(reply, c.SegmentDeleted, name)

    async def update_table(self, name: str, entries: Sequence[TableEntryTuple]) -> list[int]:
        wire = tuple(c.TableEntry(c.TableKey(key, version), value) for key, value, version in entries)
        reply = await self._request(lambda rid, token: c.UpdateTableEntries(rid, name, token, wire), name)
        return list(self._expect(reply, c.TableEntriesUpdated, name).updated_versions)

    async def remove_keys(self, name: str, keys: Sequence[tuple[bytes, int]]) -> None:
        wire = tuple(c.TableKey(key, version) for key, version in keys)
        reply = await self._request(lambda rid, token: c.RemoveTableKeys(rid, name, token, wire), name)
        self._expect(reply, c.TableKeysRemoved, name)

    async def read_table(self, name: str, keys: Sequence[bytes]) -> list[tuple[bytes, int] | None]:
        wire = tuple(c.TableKey(key) for key in keys)
        reply = await self._request(lambda rid, token: c.ReadTable(rid, name, token, wire), name)
        read = self._expect(reply, c.TableRead, name)
        return [None if e.key.version < 0 else (e.value, e.key.version) for e in read.entries]

    async def read_entries(self, name: str, token: bytes, count: int) -> tuple[list[TableEntryTuple], bytes]:
        args = c.TableIteratorArgs(continuation_token=token)
        reply = await self._request(lambda rid, token: c.ReadTableEntries(rid, name, token, count, args), name)
        read = self._expect(reply, c.TableEntriesRead, name)
        return [(e.key.key, e.value, e.key.version) for e in read.entries], read.continuation_token

    @staticmethod
    def _expect(reply: c.WireCommand, kind: type[T], segment: str) -> T:
        if isinstance(reply, kind):
            return reply
        raise_for_reply(reply, segment)
        raise UnexpectedReplyError(f"unexpected reply {type(reply).__name__} for {segment}, wanted {kind.__name__}")
