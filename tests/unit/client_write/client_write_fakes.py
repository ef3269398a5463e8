"""In-test fakes for the writer unit tests: a tiny in-memory segment store on a real TCP socket, and a
controller stand-in with just the calls writers make. Used only by tests in this folder."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from anabranch.client.config import ClientConfig
from anabranch.client.connection import ConnectionPool
from anabranch.client.controller_client import CreatedTxn, Endpoint, PingStatus, Successor, TxnState
from anabranch.client.hashing import SegmentWithRange
from anabranch.client.segment_writer import ClientContext
from anabranch.model.keyspace import initial_ranges
from anabranch.model.names import parent_segment_name, qualified_segment_name, transaction_segment_name
from anabranch.protocol import commands as c
from anabranch.protocol.codec import encode
from anabranch.protocol.server_connection import Append, ServerConnection


@dataclass
class FakeSegment:
    data: bytearray = field(default_factory=bytearray)
    sealed: bool = False
    start: int = 0
    writers: dict[uuid.UUID, int] = field(default_factory=dict)


class FakeSegmentStore:
    """Stores appends in memory, dedupes by writer event numbers, acks in order."""

    def __init__(self) -> None:
        self.segments: dict[str, FakeSegment] = {}
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.hold_acks = False
        self.appends = 0
        self.wrong_host = 0
        self.wrong_port = 0
        self.append_error: str | None = None
        """When set, appends are refused with an ``ErrorMessage`` carrying this text (as on a full disk)."""

    async def start(self) -> FakeSegmentStore:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    def events(self, name: str) -> list[bytes]:
        data, out, pos = bytes(self.segments[name].data), [], 0
        while pos < len(data):
            length = int.from_bytes(data[pos + 4 : pos + 8], "big")
            out.append(data[pos + 8 : pos + 8 + length])
            pos += 8 + length
        return out

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        conn = ServerConnection()
        try:
            while data := await reader.read(1 << 20):
                for item in conn.receive_data(data):
                    reply = self._handle(item)
                    if reply is not None and not (self.hold_acks and isinstance(reply, c.DataAppended)):
                        writer.write(encode(reply))
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _handle(self, item: c.Request | Append) -> c.Reply | None:
        if isinstance(item, Append):
            return self._append(item)
        if isinstance(item, c.Hello):
            return c.Hello(c.WIRE_VERSION, c.OLDEST_COMPATIBLE_VERSION)
        seg = self.segments.get(getattr(item, "segment", getattr(item, "segment_name", "")))
        rid = getattr(item, "request_id", -1)
        if isinstance(item, c.SetupAppend):
            if seg is None:
                return c.NoSuchSegment(rid, item.segment, "", -1)
            last = seg.writers.get(item.writer_id, c.NULL_ATTRIBUTE_VALUE)
            return c.AppendSetup(rid, item.segment, item.writer_id, last)
        if isinstance(item, c.CreateTransientSegment):
            name = f"{item.parent_segment}#transient.{uuid.uuid4().hex}"
            self.segments[name] = FakeSegment()
            return c.SegmentCreated(rid, name)
        if isinstance(item, c.MergeSegments):
            source = self.segments.pop(item.source)
            target = self.segments[item.target]
            target.data += source.data
            return c.SegmentsMerged(rid, item.target, item.source, len(target.data))
        if seg is None:
            return c.NoSuchSegment(rid, getattr(item, "segment", ""), "", -1)
        if isinstance(item, c.GetStreamSegmentInfo):
            return c.StreamSegmentInfo(rid, item.segment_name, True, seg.sealed, False, 0, len(seg.data), seg.start)
        if isinstance(item, c.SealSegment):
            seg.sealed = True
            return c.SegmentSealed(rid, item.segment)
        if isinstance(item, c.TruncateSegment):
            seg.start = item.truncation_offset
            return c.SegmentTruncated(rid, item.segment)
        if isinstance(item, c.ReadSegment):
            data = bytes(seg.data[item.offset : item.offset + item.suggested_length])
            end = seg.sealed and item.offset + len(data) >= len(seg.data)
            return c.SegmentRead(item.segment, item.offset, True, end, data, rid)
        raise AssertionError(f"fake segment store got {item!r}")

    def _append(self, item: Append) -> c.Reply:
        seg = self.segments.get(item.segment)
        if seg is None:
            return c.NoSuchSegment(item.request_id, item.segment, "", -1)
        if seg.sealed:
            return c.SegmentIsSealed(item.request_id, item.segment, "", item.event_number)
        if self.append_error is not None:
            return c.ErrorMessage(item.request_id, item.segment, self.append_error, 7)
        previous = seg.writers.get(item.writer_id, c.NULL_ATTRIBUTE_VALUE)
        if item.expected_offset is not None and item.expected_offset != len(seg.data):
            return c.ConditionalCheckFailed(item.writer_id, item.event_number, item.request_id)
        if item.event_number > previous:
            seg.data += item.data
            seg.writers[item.writer_id] = item.event_number
            self.appends += 1
        return c.DataAppended(item.writer_id, item.event_number, previous, item.request_id, len(seg.data))


class FakeController:
    """The controller calls writers make, over a stream map kept in memory."""

    def __init__(self, store: FakeSegmentStore) -> None:
        self.store = store
        self.current: dict[tuple[str, str], list[SegmentWithRange]] = {}
        self.successors: dict[int, list[Successor]] = {}
        self.txns: dict[uuid.UUID, TxnState] = {}
        self.pings = 0

    def create_stream(self, scope: str, stream: str, count: int) -> list[SegmentWithRange]:
        segments = [
            SegmentWithRange(scope, stream, i, low, high) for i, (low, high) in enumerate(initial_ranges(count))
        ]
        self.current[(scope, stream)] = segments
        for s in segments:
            self.store.segments[s.qualified_name] = FakeSegment()
        return segments

    def scale(self, scope: str, stream: str, sealed_id: int, parts: int, first_number: int, epoch: int) -> None:
        old = next(s for s in self.current[(scope, stream)] if s.segment_id == sealed_id)
        width = (old.max_key - old.min_key) / parts
        new = [
            SegmentWithRange(
                scope,
                stream,
                (epoch << 32) | (first_number + i),
                old.min_key + i * width,
                old.max_key if i == parts - 1 else old.min_key + (i + 1) * width,
            )
            for i in range(parts)
        ]
        for s in new:
            self.store.segments[s.qualified_name] = FakeSegment()
        self.successors[sealed_id] = [Successor(s, (sealed_id,)) for s in new]
        self.current[(scope, stream)] = sorted(
            [s for s in self.current[(scope, stream)] if s.segment_id != sealed_id] + new, key=lambda s: s.min_key
        )
        self.store.segments[old.qualified_name].sealed = True

    def merge(self, scope: str, stream: str, sealed_ids: list[int], number: int, epoch: int) -> None:
        olds = [s for s in self.current[(scope, stream)] if s.segment_id in sealed_ids]
        new = SegmentWithRange(
            scope, stream, (epoch << 32) | number, min(s.min_key for s in olds), max(s.max_key for s in olds)
        )
        self.store.segments[new.qualified_name] = FakeSegment()
        for old in olds:
            self.successors[old.segment_id] = [Successor(new, tuple(sealed_ids))]
            self.store.segments[old.qualified_name].sealed = True
        self.current[(scope, stream)] = sorted(
            [s for s in self.current[(scope, stream)] if s.segment_id not in sealed_ids] + [new],
            key=lambda s: s.min_key,
        )

    async def get_uri(self, scope: str, stream: str, segment_id: int) -> Endpoint:
        if self.store.wrong_host:
            self.store.wrong_host -= 1
            return Endpoint("127.0.0.1", self.store.wrong_port)
        return Endpoint("127.0.0.1", self.store.port)

    async def get_current_segments(self, scope: str, stream: str) -> list[SegmentWithRange]:
        return list(self.current[(scope, stream)])

    async def get_head_segments(self, scope: str, stream: str) -> dict[int, int]:
        return {s.segment_id: 0 for s in self.current[(scope, stream)]}

    async def get_successors(self, scope: str, stream: str, segment_id: int) -> list[Successor]:
        return self.successors.get(segment_id, [])

    async def get_delegation_token(self, scope: str, stream: str) -> str:
        return ""

    async def create_transaction(self, scope: str, stream: str, lease_ms: int) -> CreatedTxn:
        txn_id = uuid.uuid4()
        segments = self.current[(scope, stream)]
        for s in segments:
            self.store.segments[transaction_segment_name(s.qualified_name, txn_id)] = FakeSegment()
        self.txns[txn_id] = TxnState.OPEN
        return CreatedTxn(txn_id, tuple(segments))

    async def commit_transaction(
        self, scope: str, stream: str, txn_id: uuid.UUID, writer_id: str = "", timestamp: int | None = None
    ) -> None:
        for name in [n for n in self.store.segments if n.endswith(txn_id.hex)]:
            self.store.segments[parent_segment_name(name)].data += self.store.segments.pop(name).data
        self.txns[txn_id] = TxnState.COMMITTED

    async def abort_transaction(self, scope: str, stream: str, txn_id: uuid.UUID) -> None:
        for name in [n for n in self.store.segments if n.endswith(txn_id.hex)]:
            del self.store.segments[name]
        self.txns[txn_id] = TxnState.ABORTED

    async def ping_transaction(self, scope: str, stream: str, txn_id: uuid.UUID, lease_ms: int) -> PingStatus:
        self.pings += 1
        return PingStatus.OK

    async def check_transaction_state(self, scope: str, stream: str, txn_id: uuid.UUID) -> TxnState:
        return self.txns.get(txn_id, TxnState.UNKNOWN)

    async def close(self) -> None:
        return None


def make_context(controller: FakeController, **settings: object) -> ClientContext:
    return ClientContext(ClientConfig(**settings), controller, ConnectionPool())  # type: ignore[arg-type]


def segment_name(scope: str, stream: str, segment_id: int) -> str:
    return qualified_segment_name(scope, stream, segment_id)
