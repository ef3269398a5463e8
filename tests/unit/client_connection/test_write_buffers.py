"""write_buffers: an append block's buffers reach the socket in order without being joined (os.writev while the
transport has nothing queued, the unsent rest queued in the transport), and the transport path gives the same
bytes (TLS, Python 3.12+, or a backlog). Real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from anabranch.client.connection import write_buffers

WAIT = 10.0


@contextlib.asynccontextmanager
async def pair() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """(what the server side reads, the client side's writer) over a real TCP connection."""
    accepted: asyncio.Future[asyncio.StreamReader] = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(reader)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield await asyncio.wait_for(accepted, WAIT), writer
    finally:
        writer.close()
        server.close()


def pieces(count: int, size: int) -> list[bytes | memoryview]:
    data: list[bytes | memoryview] = []
    for i in range(count):
        piece = bytes([i % 251]) * size
        data.append(piece if i % 2 else memoryview(b"<" + piece + b">")[1:-1])
    return data


@pytest.mark.parametrize("direct", [True, False])
async def test_many_small_buffers_arrive_in_order(direct: bool) -> None:
    data = pieces(3000, 7)  # more buffers than one writev takes
    async with pair() as (reader, writer):
        write_buffers(writer.transport, data, direct=direct)
        assert writer.transport.get_write_buffer_size() == 0  # small enough for the socket either way
        received = await asyncio.wait_for(reader.readexactly(3000 * 7), WAIT)
    assert received == b"".join(data)


async def test_a_full_socket_leaves_the_rest_queued_in_order_and_later_writes_queue_behind_it() -> None:
    first = pieces(512, 64 * 1024)  # 32 MiB: more than the socket buffers take while nobody reads
    second = pieces(3, 5)
    async with pair() as (reader, writer):
        write_buffers(writer.transport, first, direct=True)
        queued = writer.transport.get_write_buffer_size()
        assert 0 < queued < 32 * 1024 * 1024  # the kernel took part of it directly, the transport holds the rest
        write_buffers(writer.transport, second, direct=True)  # a backlog: through the transport, after it
        assert writer.transport.get_write_buffer_size() == queued + 15
        received = await asyncio.wait_for(reader.readexactly(32 * 1024 * 1024 + 15), WAIT)
    assert received == b"".join(first) + b"".join(second)


async def test_a_closed_socket_is_left_to_the_transport_to_report() -> None:
    async with pair() as (_reader, writer):
        transport = writer.transport
        transport.abort()
        write_buffers(transport, pieces(3, 5), direct=True)  # no exception: the transport discards it
        assert transport.is_closing()
