"""A synchronous facade over the asyncio client, for scripts and REPLs.

``connect(uri)`` starts one background thread running an event loop and returns a
``BlockingStreamManager``. Its main methods, and those of the writers, readers and reader groups it hands out
(``BlockingEventStreamWriter``, ``BlockingEventStreamReader``, ``BlockingReaderGroup``), are typed; every other
object it hands out is a generic ``Blocking`` proxy: calling a method runs
the coroutine on that loop and waits for its result; async iterators come back as lists; acks
(asyncio futures) come back as ``concurrent.futures.Future``; resources (writers, readers, groups,
tables) come back wrapped again. Invariant: all client code runs on the loop thread only.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, Generic, TypeVar, cast

from anabranch.client.config import ClientConfig, StreamConfiguration
from anabranch.client.controller_client import ScaleResult
from anabranch.client.event_pointer import EventPointer
from anabranch.client.event_reader import EventRead, EventStreamReader
from anabranch.client.event_writer import EventStreamWriter
from anabranch.client.lag import Lag
from anabranch.client.reader_group import ReaderGroup
from anabranch.client.reader_group_config import Position, ReaderGroupConfig
from anabranch.client.reader_group_state import Checkpoint
from anabranch.client.serializers import Serializer
from anabranch.client.stream_manager import StreamInfo, StreamManager
from anabranch.model.stream_cut import StreamCut

T = TypeVar("T")
CALL_TIMEOUT = 300.0
STOP_TIMEOUT = 0.5
"""Seconds ``close()`` waits for tasks left running (readers or writers not closed) to end."""


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="anabranch-client", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = CALL_TIMEOUT) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("blocking client calls cannot be made from the client's own loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Cancel what still runs on the loop (readers or writers left open), then stop and close it."""
        atexit.unregister(self.stop)
        if self.loop.is_closed():
            return
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_pending(), self.loop).result(2 * STOP_TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=STOP_TIMEOUT)
        if not self.loop.is_running():
            self.loop.close()


async def _cancel_pending() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        _, still_pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        for task in still_pending:
            # Left open by the program and slow to wind down: the loop closes under it on purpose, at exit.
            task._log_destroy_pending = False  # type: ignore[attr-defined]


async def _collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


async def _await(future: asyncio.Future[T]) -> T:
    return await future


_ASYNC_TYPES: dict[type, bool] = {}


def _is_resource(value: object) -> bool:
    """True for client objects with async methods (writers, readers, groups, tables), not for plain values."""
    kind = type(value)
    known = _ASYNC_TYPES.get(kind)
    if known is None:
        methods = [getattr(kind, name, None) for name in dir(kind) if not name.startswith("__")]
        known = _ASYNC_TYPES[kind] = kind.__module__.startswith("anabranch.client") and any(
            inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m) for m in methods)
    return known


class Blocking:
    """Wraps one async client object; its methods block until done. Usable as a context manager."""

    def __init__(self, target: Any, runner: LoopThread) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_runner", runner)

    @property
    def wrapped(self) -> Any:
        """The underlying asyncio object (use it only on the client's loop)."""
        return self._target

    def _convert(self, value: Any) -> Any:
        runner: LoopThread = self._runner
        if inspect.isawaitable(value) and not isinstance(value, asyncio.Future):
            value = runner.run(_as_coroutine(value))
        if isinstance(value, asyncio.Future):
            return asyncio.run_coroutine_threadsafe(_await(value), runner.loop)
        if _is_resource(value):
            return Blocking(value, runner)
        if hasattr(value, "__anext__"):
            return runner.run(_collect(value))
        return value

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._convert(self._runner.run(_call(attribute, args, kwargs)))

        return call

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        closer: Callable[[], Any] | None = getattr(self._target, "close", None)
        if closer is not None:
            self._runner.run(_call(closer, (), {}))


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


async def _as_coroutine_of(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Calls ``function`` on the loop thread and awaits what it returns (a coroutine or any other awaitable)."""
    return await function(*args)


async def _call(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Calls ``function`` on the loop thread; a returned coroutine is awaited there too."""
    result = function(*args, **kwargs)
    if inspect.iscoroutine(result):
        result = await result
    return result


class BlockingEventStreamWriter(Blocking, Generic[T]):
    """``EventStreamWriter`` with blocking, typed methods; acks are ``concurrent.futures.Future``s."""

    @property
    def _writer(self) -> EventStreamWriter[T]:
        return cast("EventStreamWriter[T]", self._target)

    def write_event(self, event: T, routing_key: str | None = None) -> concurrent.futures.Future[None]:
        ack = self._runner.run(_as_coroutine_of(self._writer.write_event, event, routing_key))
        return asyncio.run_coroutine_threadsafe(_await(ack), self._runner.loop)

    def write_events(self, events: Iterable[T], routing_key: str | None = None) -> concurrent.futures.Future[None]:
        ack = self._runner.run(self._writer.write_events(events, routing_key))
        return asyncio.run_coroutine_threadsafe(_await(ack), self._runner.loop)

    def flush(self) -> None:
        self._runner.run(self._writer.flush())

    def note_time(self, timestamp: int) -> bool:
        return self._runner.run(self._writer.note_time(timestamp))


class BlockingEventStreamReader(Blocking, Generic[T]):
    """``EventStreamReader`` with blocking, typed methods."""

    @property
    def _reader(self) -> EventStreamReader[T]:
        return cast("EventStreamReader[T]", self._target)

    def read_next_event(self, timeout: float = 10.0) -> EventRead[T]:
        return self._runner.run(self._reader.read_next_event(timeout))

    def read_events(self, max_events: int = 1000, timeout: float = 10.0) -> list[EventRead[T]]:
        return self._runner.run(self._reader.read_events(max_events, timeout))

    def fetch_event(self, pointer: EventPointer) -> T:
        return self._runner.run(self._reader.fetch_event(pointer))

    def lag(self, *, count_events: bool = True) -> Lag:
        return self._runner.run(self._reader.lag(count_events=count_events))

    @property
    def position(self) -> Position:
        return self._reader.position


class BlockingReaderGroup(Blocking):
    """``ReaderGroup`` with blocking, typed methods."""

    @property
    def _group(self) -> ReaderGroup:
        return cast(ReaderGroup, self._target)

    def create_reader(self, reader_id: str,
                      serializer: Serializer[Any] | None = None) -> BlockingEventStreamReader[Any]:
        return BlockingEventStreamReader(self._runner.run(self._group.create_reader(reader_id, serializer)),
                                         self._runner)

    def readers(self) -> frozenset[str]:
        return self._runner.run(self._group.readers())

    def reader_offline(self, reader_id: str, last_position: Position | None = None) -> None:
        self._runner.run(self._group.reader_offline(reader_id, last_position))

    def initiate_checkpoint(self, name: str, timeout: float = 60.0) -> Checkpoint:
        return self._runner.run(self._group.initiate_checkpoint(name, timeout), timeout + CALL_TIMEOUT)

    def get_stream_cuts(self) -> dict[tuple[str, str], StreamCut]:
        return self._runner.run(self._group.get_stream_cuts())

    def lag(self, *, count_events: bool = True) -> Lag:
        return self._runner.run(self._group.lag(count_events=count_events))

    def reader_lags(self, *, count_events: bool = True) -> dict[str, Lag]:
        return self._runner.run(self._group.reader_lags(count_events=count_events))

    def close(self) -> None:
        """A reader group holds nothing to close."""


class BlockingStreamManager(Blocking):
    """``StreamManager`` with blocking, typed methods; ``close()`` also stops the loop thread. Less common methods
    (byte streams, transactions, tables, batch reads) pass through untyped and block the same way."""

    @property
    def _manager(self) -> StreamManager:
        return cast(StreamManager, self._target)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def create_scope(self, scope: str) -> bool:
        return self._run(self._manager.create_scope(scope))

    def delete_scope(self, scope: str) -> bool:
        return self._run(self._manager.delete_scope(scope))

    def scope_exists(self, scope: str) -> bool:
        return self._run(self._manager.scope_exists(scope))

    def list_scopes(self) -> list[str]:
        return self._run(_collect(self._manager.list_scopes()))

    def create_stream(self, scope: str, stream: str, config: StreamConfiguration | None = None) -> bool:
        return self._run(self._manager.create_stream(scope, stream, config))

    def update_stream(self, scope: str, stream: str, config: StreamConfiguration) -> None:
        self._run(self._manager.update_stream(scope, stream, config))

    def get_stream_configuration(self, scope: str, stream: str) -> StreamConfiguration:
        return self._run(self._manager.get_stream_configuration(scope, stream))

    def stream_exists(self, scope: str, stream: str) -> bool:
        return self._run(self._manager.stream_exists(scope, stream))

    def list_streams(self, scope: str, *, tag: str | None = None) -> list[str]:
        return self._run(_collect(self._manager.list_streams(scope, tag=tag)))

    def seal_stream(self, scope: str, stream: str) -> None:
        self._run(self._manager.seal_stream(scope, stream))

    def truncate_stream(self, cut: StreamCut) -> None:
        self._run(self._manager.truncate_stream(cut))

    def delete_stream(self, scope: str, stream: str) -> bool:
        return self._run(self._manager.delete_stream(scope, stream))

    def get_stream_info(self, scope: str, stream: str) -> StreamInfo:
        return self._run(self._manager.get_stream_info(scope, stream))

    def scale_stream(self, scope: str, stream: str, sealed_segments: Iterable[int],
                     new_ranges: Iterable[tuple[float, float]], *, timeout: float = 60.0) -> ScaleResult:
        return self._run(self._manager.scale_stream(scope, stream, sealed_segments, new_ranges, timeout=timeout))

    def create_writer(self, scope: str, stream: str,
                      serializer: Serializer[Any] | None = None) -> BlockingEventStreamWriter[Any]:
        writer = self._run(_call(self._manager.create_writer, (scope, stream, serializer), {}))
        return BlockingEventStreamWriter(writer, self._runner)

    def create_reader_group(self, scope: str, group: str, config: ReaderGroupConfig) -> BlockingReaderGroup:
        return BlockingReaderGroup(self._run(self._manager.create_reader_group(scope, group, config)), self._runner)

    def get_reader_group(self, scope: str, group: str) -> BlockingReaderGroup:
        return BlockingReaderGroup(self._run(self._manager.get_reader_group(scope, group)), self._runner)

    def delete_reader_group(self, scope: str, group: str) -> bool:
        return self._run(self._manager.delete_reader_group(scope, group))

    def read_event(self, pointer: EventPointer, serializer: Serializer[Any] | None = None) -> Any:
        return self._run(self._manager.read_event(pointer, serializer) if serializer is not None
                         else self._manager.read_event(pointer))

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._runner.stop()


def connect(controller_uri: str = "tcp://127.0.0.1:9090", **settings: Any) -> BlockingStreamManager:
    """A blocking ``StreamManager`` for ``controller_uri`` (other ``ClientConfig`` settings as keywords)."""
    runner = LoopThread()
    config = ClientConfig(controller_uri, **settings)

    async def make() -> StreamManager:
        return StreamManager(config)

    return BlockingStreamManager(runner.run(make()), runner)
