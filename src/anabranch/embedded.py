"""A whole Anabranch inside a Python process: a segment store and a controller in the running event loop, for tests,
notebooks and scripts.

``async with Standalone() as server:`` starts both on free loopback ports (port 0) and gives a connected
``StreamManager`` (``server.manager``); ``server.controller_uri`` is what any other client, the official ``pravega``
one included, connects to. With ``data_dir=None`` Tier-1 and LTS live in memory (nothing touches the disk, and
nothing survives a ``restart``); with a directory they are the fsync'd files ``anabranch standalone`` writes, so
``await server.restart()`` (stop, start again on the same data and, if still free, the same ports) keeps every
acknowledged event. ``Standalone.blocking(...)`` runs the same server on an event loop in a background thread, for
code whose calls block the thread (plain scripts, notebooks, the official client).

The servers are the same ``SegmentStoreService`` and ``ControllerService`` the ``anabranch standalone`` command
runs, composed by the same ``start_standalone``; no admin endpoint is started. Every server timer follows
``clock`` (a ``ManualClock`` in tests; see docs/testing.md), and so do clients built from ``client_config()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from anabranch.clock import SYSTEM_CLOCK, Clock
from anabranch.controller.service import ControllerService
from anabranch.datadir import DataDirLock, lock_data_dir
from anabranch.segmentstore.service import SegmentStoreService
from anabranch.segmentstore.stats import AutoScaleConfig

if TYPE_CHECKING:
    from anabranch.client import ClientConfig, StreamManager

log = logging.getLogger(__name__)

T = TypeVar("T")

HOST = "127.0.0.1"
MIB = 1024 * 1024
IN_MEMORY = Path("<in-memory>")
"""The ``data_dir`` an in-memory segment store is given (it never writes there)."""


async def start_standalone(store: SegmentStoreService, *, controller_port: int,
                           time_scale: float = 1.0) -> ControllerService:
    """Start ``store``, then a controller on ``store.host:controller_port`` that keeps its metadata on it, with the
    store's TLS, auth and clock, reaching it in-process (``segmentstore.local_connection``: no socket); stop the
    store again if the controller cannot start. The composition both ``anabranch standalone`` and the embedded
    ``Standalone`` run."""
    await store.start()
    tls = store.tls
    controller = ControllerService(store.host, store.port, host=store.host, port=controller_port, tls=tls,
                                   segment_store_ssl=tls.internal_client_context() if tls is not None else None,
                                   time_scale=time_scale, auth=store.auth, clock=store.clock,
                                   segment_store_connect=store.local_connector())
    try:
        await controller.start()
    except BaseException:
        await store.stop()
        raise
    return controller


class Standalone:
    """A segment store and a controller running in this process's event loop (see the module docstring).

    ``containers`` is the number of segment containers; ``time_scale`` compresses the auto-scale, retention and
    watermark periods as ``--autoscale-time-scale`` does; ``cache_size`` is the segment store's read cache.
    """

    def __init__(self, data_dir: str | Path | None = None, *, containers: int = 4, clock: Clock | None = None,
                 host: str = HOST, controller_port: int = 0, segment_store_port: int = 0, time_scale: float = 1.0,
                 cache_size: int = 64 * MIB) -> None:
        self.data_dir: Path | None = Path(data_dir) if data_dir is not None else None
        """Where Tier-1 and LTS are written (None: in memory)."""
        self.containers = containers
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.host = host
        self.time_scale = time_scale
        self.cache_size = cache_size
        self._ports = (segment_store_port, controller_port)
        self._lock: DataDirLock | None = None
        self._segment_store: SegmentStoreService | None = None
        self._controller: ControllerService | None = None
        self._manager: StreamManager | None = None

    @property
    def durable(self) -> bool:
        """True when data is written to fsync'd files under ``data_dir`` (and survives ``restart``)."""
        return self.data_dir is not None

    # ---- what a test uses ----

    @property
    def segment_store(self) -> SegmentStoreService:
        """The running segment store (a new object after ``restart``)."""
        if self._segment_store is None:
            raise RuntimeError("the embedded standalone is not running")
        return self._segment_store

    @property
    def controller(self) -> ControllerService:
        """The running controller (a new object after ``restart``)."""
        if self._controller is None:
            raise RuntimeError("the embedded standalone is not running")
        return self._controller

    @property
    def manager(self) -> StreamManager:
        """A ``StreamManager`` connected to this server (on ``clock``), closed by ``stop``."""
        if self._manager is None:
            raise RuntimeError("the embedded standalone is not running")
        return self._manager

    @property
    def controller_port(self) -> int:
        return self.controller.port

    @property
    def segment_store_port(self) -> int:
        return self.segment_store.port

    @property
    def controller_uri(self) -> str:
        """``tcp://127.0.0.1:<port>``: what clients (this package's or the official ``pravega`` one) connect to."""
        return f"tcp://{self.host}:{self.controller.port}"

    def client_config(self, **overrides: Any) -> ClientConfig:
        """A ``ClientConfig`` for this server whose timers follow the server's ``clock`` (``overrides`` are
        ``ClientConfig`` fields)."""
        from anabranch.client.config import ClientConfig

        overrides.setdefault("clock", self.clock)
        return ClientConfig(self.controller_uri, **overrides)

    async def create_stream(self, scope: str, stream: str, segments: int = 1) -> None:
        """Create ``scope`` (if needed) and a stream of ``segments`` fixed segments in it (if needed)."""
        from anabranch.client.config import ScalingPolicy, StreamConfiguration

        await self.manager.create_scope(scope)
        await self.manager.create_stream(scope, stream, StreamConfiguration(scaling=ScalingPolicy.fixed(segments)))

    # ---- life cycle ----

    async def start(self) -> Standalone:
        if self._segment_store is not None:
            raise RuntimeError("the embedded standalone is already running")
        if self.data_dir is not None:
            self._lock = lock_data_dir(self.data_dir)
        try:
            await self._start_servers(*self._ports)
            from anabranch.client.stream_manager import StreamManager

            self._manager = StreamManager(self.client_config())
        except BaseException:
            await self.stop()
            raise
        log.debug("embedded standalone: controller %s, segment store port %d, %s", self.controller_uri,
                  self.segment_store.port, self.data_dir or "in memory")
        return self

    async def _start_servers(self, segment_store_port: int, controller_port: int) -> None:
        store = SegmentStoreService(self.data_dir or IN_MEMORY, self.host, segment_store_port,
                                    container_count=self.containers, cache_size=self.cache_size,
                                    autoscale=AutoScaleConfig.compressed(self.time_scale), clock=self.clock,
                                    durable=self.durable)
        self._controller = await start_standalone(store, controller_port=controller_port, time_scale=self.time_scale)
        self._segment_store = store

    async def _stop_servers(self, *, crash: bool = False) -> None:
        controller, self._controller = self._controller, None
        store, self._segment_store = self._segment_store, None
        try:
            if controller is not None:
                await controller.stop(grace=0)
        finally:
            if store is not None:
                await store.stop(crash=crash)

    async def restart(self, *, crash: bool = False) -> None:
        """Stop both servers and start them again on the same data, on the same ports when they are still free
        (else on new ones, and ``manager`` is replaced). Clients keep working: they reconnect. ``crash=True`` stops
        the segment store as a killed process would (containers aborted, nothing flushed to LTS: recovery replays
        Tier-1); otherwise it flushes first. In memory (``data_dir=None``) the data does not survive either way: the
        servers start empty."""
        segment_store_port, controller_port = self.segment_store.port, self.controller.port
        await self._stop_servers(crash=crash)
        try:
            await self._start_servers(segment_store_port, controller_port)
        except OSError:
            log.warning("embedded standalone: ports %d/%d taken after restart; starting on new ones",
                        segment_store_port, controller_port)
            await self._start_servers(0, 0)
            if self.controller.port != controller_port and self._manager is not None:
                from anabranch.client.stream_manager import StreamManager

                await self._manager.close()
                self._manager = StreamManager(self.client_config())

    async def stop(self) -> None:
        """Close the manager (and everything created from it), stop the controller, then the segment store
        (flushing what is pending); release the data directory."""
        manager, self._manager = self._manager, None
        try:
            if manager is not None:
                await manager.close()
        finally:
            try:
                await self._stop_servers()
            finally:
                if self._lock is not None:
                    self._lock.release()
                    self._lock = None

    async def __aenter__(self) -> Standalone:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        where = str(self.data_dir) if self.data_dir is not None else "in memory"
        if self._controller is None:
            return f"Standalone({where}, stopped)"
        return f"Standalone({where}, controller {self.controller_uri})"

    @classmethod
    def blocking(cls, data_dir: str | Path | None = None, **options: Any) -> BlockingStandalone:
        """The same server on an event loop in a background thread: ``with Standalone.blocking() as server:``."""
        return BlockingStandalone(data_dir, **options)


class BlockingStandalone:
    """An embedded ``Standalone`` whose event loop runs in a background thread, driven by blocking calls: for plain
    scripts, notebooks, synchronous tests and the official ``pravega`` client (whose calls block the thread).

    ``with BlockingStandalone() as server:`` (or ``Standalone.blocking()``) starts it; ``server.controller_uri``
    is what clients connect to; ``server.run(coroutine)`` runs a coroutine on the server's loop and returns its
    result (e.g. ``server.run(server.server.manager.list_scopes())``). Every call is bounded by ``timeout``.

    The official ``pravega`` client (0.3.8) holds the GIL while its calls block, so the server's thread cannot run
    meanwhile: an application using it must run in another process (e.g. ``subprocess``) against this server, or use
    a server process (``anabranch.testing.processes.Standalone``, the ``anabranch_process`` fixture).
    """

    def __init__(self, data_dir: str | Path | None = None, *, timeout: float = 60.0, **options: Any) -> None:
        self.server = Standalone(data_dir, **options)
        """The asynchronous server; use its coroutines through ``run``."""
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the server's event loop and return its result (``TimeoutError`` after ``timeout``
        seconds, default ``self.timeout``)."""
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the embedded standalone is not running")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self.timeout if timeout is None else timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the embedded standalone did not finish within {timeout or self.timeout} s") from None

    def start(self) -> BlockingStandalone:
        if self._loop is not None:
            raise RuntimeError("the embedded standalone is already running")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="anabranch-embedded", daemon=True)
        self._thread.start()
        try:
            self.run(self.server.start())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def stop(self) -> None:
        """Stop the servers, then the loop and its thread."""
        if self._loop is None:
            return
        try:
            self.run(self.server.stop())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_cancel_other_tasks(), loop).result(self.timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    def restart(self, *, crash: bool = False) -> None:
        """``Standalone.restart`` (same data and ports; in memory the data does not survive)."""
        self.run(self.server.restart(crash=crash))

    @property
    def controller_uri(self) -> str:
        return self.server.controller_uri

    @property
    def data_dir(self) -> Path | None:
        return self.server.data_dir

    @property
    def clock(self) -> Clock:
        return self.server.clock

    def client_config(self, **overrides: Any) -> ClientConfig:
        return self.server.client_config(**overrides)

    def create_scope(self, scope: str) -> bool:
        """True if created, False if it already existed."""
        return self.run(self.server.manager.create_scope(scope))

    def create_stream(self, scope: str, stream: str, segments: int = 1) -> None:
        """Create ``scope`` (if needed) and a stream of ``segments`` fixed segments in it (if needed)."""
        self.run(self.server.create_stream(scope, stream, segments))

    def __enter__(self) -> BlockingStandalone:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Blocking{self.server!r}"


async def _cancel_other_tasks() -> None:
    """Cancel and await every task left on the loop but the caller (a clean end for the background loop)."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
