"""RawConnection and ConnectionPool against a tiny scripted asyncio server on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from anabranch.client.connection import ConnectionPool, RawConnection, ReplyTimeoutError, next_request_id
from anabranch.errors import ConnectionFailedError, ProtocolError
from anabranch.protocol.codec import CommandDecoder, encode, encode_append_block_end
from anabranch.protocol.commands import (
    AppendBlockEnd,
    CreateSegment,
    DataAppended,
    Hello,
    KeepAlive,
    Reply,
    SealSegment,
    SegmentCreated,
    SegmentIsSealed,
    SegmentSealed,
    SetupAppend,
    WireCommand,
)

WAIT = 5.0
SERVER_HELLO = Hello(17, 5)
Responder = Callable[[WireCommand], list[WireCommand]]


def echo_created(cmd: WireCommand) -> list[WireCommand]:
    if isinstance(cmd, CreateSegment):
        return [SegmentCreated(cmd.request_id, cmd.segment)]
    return []


class FakeSegmentStore:
    """Replies Hello(hello) to each connection, then whatever ``responder`` returns for each command."""

    def __init__(self, responder: Responder = echo_created, hello: WireCommand | None = SERVER_HELLO) -> None:
        self.responder = responder
        self.hello = hello
        self.received: list[WireCommand] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.got_command = asyncio.Event()
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        decoder = CommandDecoder()
        if self.hello is not None:
            writer.write(encode(self.hello))
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                for cmd in decoder.feed(data):
                    self.received.append(cmd)
                    self.got_command.set()
                    for reply in self.responder(cmd):
                        writer.write(encode(reply))
        writer.close()

    def push(self, *commands: WireCommand) -> None:
        for writer in self.writers:
            writer.write(b"".join(encode(c) for c in commands))

    def drop_connections(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []

    async def wait_received(self, count: int) -> None:
        async def until() -> None:
            while len(self.received) < count:
                self.got_command.clear()
                await self.got_command.wait()

        await asyncio.wait_for(until(), WAIT)

    async def stop(self) -> None:
        self.drop_connections()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def store() -> AsyncIterator[FakeSegmentStore]:
    server = FakeSegmentStore()
    await server.start()
    yield server
    await server.stop()


async def test_handshake_sends_hello_first(store: FakeSegmentStore) -> None:
    conn = await RawConnection.connect("127.0.0.1", store.port)
    await store.wait_received(1)
    assert store.received[0] == Hello(17, 5)
    assert conn.peer == ("127.0.0.1", store.port)
    assert not conn.closed
    await conn.close()
    assert conn.closed


@pytest.mark.parametrize("hello", [Hello(4, 2), Hello(30, 18), SegmentCreated(1, "x")])
async def test_handshake_rejects_incompatible_or_missing_hello(hello: WireCommand) -> None:
    server = FakeSegmentStore(hello=hello)
    await server.start()
    try:
        with pytest.raises(ConnectionFailedError):
            await RawConnection.connect("127.0.0.1", server.port)
    finally:
        await server.stop()


async def test_handshake_timeout_and_refused() -> None:
    server = FakeSegmentStore(hello=None)
    await server.start()
    port = server.port
    try:
        with pytest.raises(ConnectionFailedError, match="no Hello"):
            await RawConnection.connect("127.0.0.1", port, timeout=0.2)
    finally:
        await server.stop()
    with pytest.raises(ConnectionFailedError):
        await RawConnection.connect("127.0.0.1", port, timeout=WAIT)


async def test_requests_resolve_by_request_id_in_any_order() -> None:
    held: list[CreateSegment] = []

    def answer_in_reverse(cmd: WireCommand) -> list[WireCommand]:
        if not isinstance(cmd, CreateSegment):
            return []
        held.append(cmd)
        if len(held) < 2:
            return []
        return [SegmentCreated(c.request_id, c.segment) for c in reversed(held)]

    server = FakeSegmentStore(answer_in_reverse)
    await server.start()
    conn = await RawConnection.connect("127.0.0.1", server.port)
    try:
        first, second = next_request_id(), next_request_id()
        assert second > first
        replies = await asyncio.gather(
            conn.request(CreateSegment(first, "a"), timeout=WAIT),
            conn.request(CreateSegment(second, "b"), timeout=WAIT),
        )
        assert replies == [SegmentCreated(first, "a"), SegmentCreated(second, "b")]
    finally:
        await conn.close()
        await server.stop()


async def test_request_timeout(store: FakeSegmentStore) -> None:
    conn = await RawConnection.connect("127.0.0.1", store.port)
    try:
        with pytest.raises(ReplyTimeoutError):
            await conn.request(SealSegment(next_request_id(), "s"), timeout=0.1)
        with pytest.raises(TimeoutError):
            await conn.request(SealSegment(next_request_id(), "s"), timeout=0.1)
        reply = await conn.request(CreateSegment(next_request_id(), "s"), timeout=WAIT)
        assert isinstance(reply, SegmentCreated)
    finally:
        await conn.close()


async def test_replies_route_to_writer_then_request_listeners(store: FakeSegmentStore) -> None:
    conn = await RawConnection.connect("127.0.0.1", store.port)
    writer, other = uuid.uuid4(), uuid.uuid4()
    by_writer: list[Reply] = []
    by_request: list[Reply] = []
    conn.add_listener(writer, by_writer.append)
    conn.add_request_listener(42, by_request.append)
    store.push(
        KeepAlive(),
        DataAppended(writer, 1, 0, 42, 10),
        DataAppended(other, 1, 0, 42, 11),
        SegmentIsSealed(42, "s"),
        SegmentIsSealed(43, "unmatched"),
        Hello(17, 5),
    )
    try:
        await asyncio.wait_for(_until(lambda: len(by_request) == 2), WAIT)
        assert by_writer == [DataAppended(writer, 1, 0, 42, 10)]
        assert by_request == [DataAppended(other, 1, 0, 42, 11), SegmentIsSealed(42, "s")]
        conn.remove_listener(writer)
        conn.remove_request_listener(42)
        store.push(DataAppended(writer, 2, 1, 42, 12))
        reply = await conn.request(CreateSegment(next_request_id(), "s"), timeout=WAIT)
        assert isinstance(reply, SegmentCreated)
        assert len(by_writer) == 1 and len(by_request) == 2
    finally:
        await conn.close()


async def test_a_failing_listener_does_not_stop_the_reader(store: FakeSegmentStore) -> None:
    conn = await RawConnection.connect("127.0.0.1", store.port)
    writer = uuid.uuid4()

    def explode(reply: Reply) -> None:
        raise RuntimeError("listener bug")

    conn.add_listener(writer, explode)
    store.push(DataAppended(writer, 1, 0, 1, 1))
    try:
        reply = await conn.request(CreateSegment(next_request_id(), "s"), timeout=WAIT)
        assert isinstance(reply, SegmentCreated)
    finally:
        await conn.close()


async def test_close_by_server_fails_pending_requests_and_calls_on_close(store: FakeSegmentStore) -> None:
    conn = await RawConnection.connect("127.0.0.1", store.port)
    reasons: list[BaseException | None] = []
    conn.on_close(reasons.append)
    pending = asyncio.ensure_future(conn.request(SealSegment(next_request_id(), "s"), timeout=WAIT))
    await store.wait_received(2)
    store.drop_connections()
    with pytest.raises(ConnectionFailedError):
        await pending
    await asyncio.wait_for(_until(lambda: conn.closed), WAIT)
    assert reasons == [None]
    with pytest.raises(ConnectionFailedError):
        conn.send(KeepAlive())
    with pytest.raises(ConnectionFailedError):
        await conn.request(SealSegment(next_request_id(), "s"))
    late: list[BaseException | None] = []
    conn.on_close(late.append)
    assert late == [None]
    await conn.close()
    assert reasons == [None]


async def test_garbage_from_server_closes_with_protocol_error(store: FakeSegmentStore) -> None:
    conn = await RawConnection.connect("127.0.0.1", store.port)
    reasons: list[BaseException | None] = []
    conn.on_close(reasons.append)
    for writer in store.writers:
        writer.write(b"\x00\x00\x00\x48\x00\x00\x00\x00")
    await asyncio.wait_for(_until(lambda: bool(reasons)), WAIT)
    assert isinstance(reasons[0], ProtocolError)
    assert conn.closed


async def test_writelines_and_drain_send_append_blocks(store: FakeSegmentStore) -> None:
    conn = await RawConnection.connect("127.0.0.1", store.port)
    writer = uuid.uuid4()
    event = b"\x00\x00\x00\x00\x00\x00\x00\x03abc"
    try:
        conn.send(SetupAppend(next_request_id(), writer, "s", ""))
        conn.writelines(encode_append_block_end(writer, 22, [event, memoryview(event)], 22, 2, 2, 9))
        conn.write(encode(KeepAlive()))
        await conn.drain()
        await store.wait_received(4)
        assert store.received[2] == AppendBlockEnd(writer, 22, event * 2, 2, 2, 9)
        assert store.received[3] == KeepAlive()
    finally:
        await conn.close()


async def test_pool_shares_one_connection_and_reconnects(store: FakeSegmentStore) -> None:
    pool = ConnectionPool()
    try:
        first, second = await asyncio.gather(pool.get("127.0.0.1", store.port), pool.get("127.0.0.1", store.port))
        assert first is second
        assert store.connections == 1
        await first.close()
        third = await pool.get("127.0.0.1", store.port)
        assert third is not first and not third.closed
        assert store.connections == 2
        reply = await third.request(CreateSegment(next_request_id(), "s"), timeout=WAIT)
        assert isinstance(reply, SegmentCreated)
    finally:
        await pool.close()
    assert third.closed
    with pytest.raises(ConnectionFailedError):
        await pool.get("127.0.0.1", store.port)


async def test_pool_connect_failure_reaches_every_caller() -> None:
    server = FakeSegmentStore()
    await server.start()
    port = server.port
    await server.stop()
    pool = ConnectionPool(connect_timeout=WAIT)
    results = await asyncio.gather(pool.get("127.0.0.1", port), pool.get("127.0.0.1", port), return_exceptions=True)
    assert all(isinstance(r, ConnectionFailedError) for r in results)
    await pool.close()


async def test_seal_round_trip_uses_request_id(store: FakeSegmentStore) -> None:
    store.responder = lambda cmd: [SegmentSealed(cmd.request_id, cmd.segment)] if isinstance(cmd, SealSegment) else []
    conn = await RawConnection.connect("127.0.0.1", store.port)
    try:
        request_id = next_request_id()
        assert await conn.request(SealSegment(request_id, "s"), timeout=WAIT) == SegmentSealed(request_id, "s")
    finally:
        await conn.close()


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)
