"""A synchronous facade over the asyncio client, for scripts and REPLs.

``connect(uri)`` starts one background thread running an event loop and returns a
``BlockingStreamManager``. Every object it hands out is a ``Blocking`` proxy: calling a method runs
the coroutine on that loop and waits for its result; async iterators come back as lists; acks
(asyncio futures) come back as ``concurrent.futures.Future``; resources (writers, readers, groups,
tables) come back wrapped again. Invariant: all client code runs on the loop thread only.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from anabranch.client.config import ClientConfig
from anabranch.client.stream_manager import StreamManager

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


async def _call(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Calls ``function`` on the loop thread; a returned coroutine is awaited there too."""
    result = function(*args, **kwargs)
    if inspect.iscoroutine(result):
        result = await result
    return result


class BlockingStreamManager(Blocking):
    """``StreamManager`` with blocking methods; ``close()`` also stops the loop thread."""

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
