"""Fault injection for tests of applications that use Anabranch: each fault is one call a test makes.

``WireProxy`` is a TCP proxy between clients and a segment store. Clients learn the segment store's address from
the controller's ``getURI``, so ``Faults`` (for an in-process standalone: its ``SegmentStoreService`` and
``ControllerService``) makes the controller advertise the proxy; from then on every client data connection goes
through it, while the controller's own connections to the segment store do not. Through the proxy a test can:

- ``drop_connections()``: reset every client connection (or only those opened since a mark, e.g. one client's);
- ``stall_connections()`` / ``resume_connections()`` (or ``async with faults.stalled():``): nothing moves either way;
- ``delay_replies(seconds)``: every reply frame reaches the client ``seconds`` late (in order);
- ``reorder_replies(True)``: consecutive reply frames are delivered in swapped pairs.

Inside the segment store: ``fail_container(id)`` crashes one container (no flush) and recovers a fresh instance
from its Tier-1 log and LTS, as a restarted process would; ``break_tier1(id)`` makes the container's Tier-1 log
fail its appends (the container then fails as on a real log failure) until ``recover_container(id)``.

For the disk: ``small_filesystem(path)`` mounts a small tmpfs (root only) and ``fill_disk(path)`` fills it, so the
segment store meets a real ``ENOSPC``. For a real server process: ``crash_and_restart(process)`` is kill -9 and
start again on the same data (``testing/processes.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.interfaces import Buffer

if TYPE_CHECKING:
    from anabranch.controller.service import ControllerService
    from anabranch.segmentstore.container import SegmentContainer
    from anabranch.segmentstore.service import SegmentStoreService
    from anabranch.segmentstore.store import SegmentStore
    from anabranch.testing.processes import ServerProcess

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
FRAME_HEADER = struct.Struct(">ii")
"""A wire frame: type code, payload length, payload."""
REORDER_HOLD = 0.02
"""Seconds a reply frame waits for a partner to swap with before it goes alone (so nothing waits for ever)."""


@dataclass(eq=False)
class ProxiedConnection:
    """One client connection through the proxy: its number (in accept order) and the two transports."""

    number: int
    client: asyncio.Transport
    upstream: asyncio.Transport | None = None
    replies: asyncio.Queue[tuple[float, bytes] | None] = field(default_factory=asyncio.Queue)
    pending: bytes = b""
    holding: bool = False
    """The deliverer holds a reply frame it took from ``replies`` and has not written yet."""
    forwarder: asyncio.Task[None] | None = None

    def abort(self) -> None:
        self.client.abort()
        if self.upstream is not None:
            self.upstream.abort()
        self.replies.put_nowait(None)


class _Upstream(asyncio.Protocol):
    def __init__(self, proxy: WireProxy, connection: ProxiedConnection) -> None:
        self.proxy, self.connection = proxy, connection

    def data_received(self, data: bytes) -> None:
        self.proxy._from_server(self.connection, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.abort()


class _Downstream(asyncio.Protocol):
    def __init__(self, proxy: WireProxy) -> None:
        self.proxy = proxy
        self.connection: ProxiedConnection | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.connection = self.proxy._accepted(transport, self)

    def data_received(self, data: bytes) -> None:
        assert self.connection is not None
        if self.connection.upstream is None:
            self.early.append(data)
        else:
            self.connection.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.connection.abort()
            self.proxy.connections.remove(self.connection)


class WireProxy:
    """A TCP proxy in front of one segment store (see the module docstring)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.port = 0
        self.connections: list[ProxiedConnection] = []
        self.accepted = 0
        """How many connections the proxy accepted so far: a mark for ``drop(since=...)``."""
        self.reply_delay = 0.0
        self.reorder = False
        self.swapped = 0
        """How many pairs of replies were delivered swapped."""
        self._stalled = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Downstream(self), HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def drop(self, since: int = 0) -> int:
        """Reset the connections accepted after the first ``since`` (all by default); returns how many."""
        doomed = [c for c in self.connections if c.number >= since]
        for connection in doomed:
            connection.abort()
        log.info("fault: dropped %d client connections", len(doomed))
        return len(doomed)

    def stall(self) -> None:
        """Stop moving bytes either way on every connection, present and new, until ``resume``."""
        self._stalled = True
        for connection in self.connections:
            self._pause(connection)

    def resume(self) -> None:
        self._stalled = False
        for connection in self.connections:
            with contextlib.suppress(RuntimeError):
                connection.client.resume_reading()
                if connection.upstream is not None:
                    connection.upstream.resume_reading()

    @staticmethod
    def _pause(connection: ProxiedConnection) -> None:
        with contextlib.suppress(RuntimeError):
            connection.client.pause_reading()
            if connection.upstream is not None:
                connection.upstream.pause_reading()

    def _accepted(self, transport: asyncio.Transport, downstream: _Downstream) -> ProxiedConnection:
        connection = ProxiedConnection(self.accepted, transport)
        self.accepted += 1
        self.connections.append(connection)
        transport.pause_reading()
        connection.forwarder = task = asyncio.get_running_loop().create_task(self._connect(connection, downstream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return connection

    async def _connect(self, connection: ProxiedConnection, downstream: _Downstream) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(lambda: _Upstream(self, connection), self.upstream_host,
                                                       self.upstream_port)
        except OSError:
            connection.abort()
            return
        connection.upstream = upstream
        for data in downstream.early:
            upstream.write(data)
        downstream.early.clear()
        if self._stalled:
            self._pause(connection)
        else:
            connection.client.resume_reading()
        await self._deliver(connection)

    def _from_server(self, connection: ProxiedConnection, data: bytes) -> None:
        if (not self.reply_delay and not self.reorder and connection.replies.empty() and not connection.pending
                and not connection.holding):
            connection.client.write(data)
            return
        buffered = connection.pending + data
        frames, offset = [], 0
        while len(buffered) - offset >= FRAME_HEADER.size:
            _, length = FRAME_HEADER.unpack_from(buffered, offset)
            end = offset + FRAME_HEADER.size + length
            if end > len(buffered):
                break
            frames.append(buffered[offset:end])
            offset = end
        connection.pending = buffered[offset:]
        now = asyncio.get_running_loop().time()
        for frame in frames:
            connection.replies.put_nowait((now, frame))

    async def _deliver(self, connection: ProxiedConnection) -> None:
        """Hand reply frames to the client: late by ``reply_delay``, in swapped pairs when ``reorder``."""
        loop = asyncio.get_running_loop()
        while True:
            item = await connection.replies.get()
            if item is None:
                return
            arrived, frame = item
            connection.holding = True
            late = arrived + self.reply_delay - loop.time()
            if late > 0:
                await asyncio.sleep(late)
            if self.reorder:
                with contextlib.suppress(TimeoutError):
                    partner = await asyncio.wait_for(connection.replies.get(), REORDER_HOLD)
                    if partner is None:
                        return
                    connection.client.write(partner[1])
                    self.swapped += 1
            if connection.client.is_closing():
                return
            connection.client.write(frame)
            connection.holding = False


class Faults:
    """Faults for an in-process standalone: its segment store and controller services (``Standalone``'s
    ``segment_store`` and ``controller``). Use ``async with Faults(...)`` or ``start()``/``close()``."""

    def __init__(self, segment_store: SegmentStoreService, controller: ControllerService) -> None:
        self.segment_store = segment_store
        self.controller = controller
        self.proxy = WireProxy(segment_store.host, segment_store.port)
        self._broken: dict[int, object] = {}
        self._advertised: Callable[[str], Awaitable[tuple[str, int]]] | None = None

    async def start(self) -> Faults:
        """Start the proxy and make the controller advertise it, so new client connections go through it."""
        port = await self.proxy.start()
        controller = self.controller.controller
        if controller is None:
            raise RuntimeError("start the controller before injecting faults")

        async def proxied(segment: str) -> tuple[str, int]:
            return HOST, port

        self._advertised = controller.segment_store_uri
        controller.segment_store_uri = proxied
        return self

    async def close(self) -> None:
        if self.controller.controller is not None and self._advertised is not None:
            self.controller.controller.segment_store_uri = self._advertised
            self._advertised = None
        await self.proxy.close()

    async def __aenter__(self) -> Faults:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the wire ---------------------------------------------------------------------------------

    def connection_mark(self) -> int:
        """A mark to pass to ``drop_connections(since=...)``: connections opened after this call."""
        return self.proxy.accepted

    def drop_connections(self, since: int = 0) -> int:
        """Reset client connections (all, or those opened since ``connection_mark()``); returns how many."""
        return self.proxy.drop(since)

    def stall_connections(self) -> None:
        self.proxy.stall()

    def resume_connections(self) -> None:
        self.proxy.resume()

    @contextlib.asynccontextmanager
    async def stalled(self) -> AsyncIterator[None]:
        """Nothing moves between clients and the segment store inside the block."""
        self.proxy.stall()
        try:
            yield
        finally:
            self.proxy.resume()

    def delay_replies(self, seconds: float) -> None:
        """Every reply reaches its client ``seconds`` late (0 turns the delay off)."""
        self.proxy.reply_delay = seconds

    def reorder_replies(self, on: bool = True) -> None:
        """Consecutive replies on a connection are delivered in swapped pairs."""
        self.proxy.reorder = on

    # --- containers -------------------------------------------------------------------------------

    def _container(self, container_id: int) -> tuple[SegmentStore, SegmentContainer]:
        store = self.segment_store.store
        if store is None:
            raise RuntimeError("the segment store is not running")
        container = store.running(container_id)
        if container is None:
            raise ValueError(f"container {container_id} does not run here (running: {store.container_ids})")
        return store, container

    async def fail_container(self, container_id: int) -> None:
        """Crash the container (queued operations are lost, nothing is flushed) and recover a new instance from its
        Tier-1 log and LTS; requests in between are answered as by a segment store that does not own it."""
        store, container = self._container(container_id)
        store.remove_container(container_id)
        await container.abort()
        await self._recover(store, container)
        log.info("fault: container %d failed and recovered", container_id)

    def break_tier1(self, container_id: int) -> None:
        """From now on the container's Tier-1 appends fail (as a lost disk or log service would): the container
        fails at its next write, and stays failed until ``recover_container``."""
        _, container = self._container(container_id)
        durable_log = container.durable_log

        def broken() -> OSError:
            return OSError(errno.EIO, f"Tier-1 log of container {container_id} broken by fault injection")

        async def failing(data: Buffer | object) -> int:
            raise broken()

        def failing_nowait(data: Buffer | object) -> asyncio.Future[int]:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            future.set_exception(broken())
            return future

        self._broken[container_id] = durable_log
        durable_log.append = failing  # type: ignore[method-assign]
        if hasattr(durable_log, "append_nowait"):  # the file log: the operation processor pipelines through it
            durable_log.append_nowait = failing_nowait

    async def recover_container(self, container_id: int) -> None:
        """Mend a broken Tier-1 log and recover the container from it, as a restarted segment store would."""
        store, container = self._container(container_id)
        durable_log = self._broken.pop(container_id, None)
        if durable_log is not None:
            del durable_log.append  # type: ignore[attr-defined]
            if "append_nowait" in vars(durable_log):
                del durable_log.append_nowait  # type: ignore[attr-defined]
        store.remove_container(container_id)
        await container.abort()
        await self._recover(store, container)

    @staticmethod
    async def _recover(store: SegmentStore, container: SegmentContainer) -> None:
        fresh = container.replacement()
        if isinstance(fresh.storage, ChunkedSegmentStorage):
            await fresh.storage.open()
        await fresh.start()
        store.add_container(fresh)


# --- the disk -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def small_filesystem(mount_point: Path, size_mib: int = 48) -> Iterator[bool]:
    """Mount a ``size_mib`` tmpfs at ``mount_point`` (needs root); yields False when it cannot be mounted here."""
    mount_point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30, check=False)


def fill_disk(path: Path) -> int:
    """Write the file ``path`` until its filesystem is full; returns the bytes written. Delete it to free space."""
    written = 0
    chunk = b"\0" * (1024 * 1024)
    with path.open("wb", buffering=0) as out:
        for size in (len(chunk), 512):
            with contextlib.suppress(OSError):
                while True:
                    written += out.write(chunk[:size])
    return written


# --- real processes ------------------------------------------------------------------------------------

def crash_and_restart(process: ServerProcess, timeout: float = 60.0) -> ServerProcess:
    """kill -9 the server process (nothing flushed) and start it again on the same data and ports."""
    return process.restart(timeout)
