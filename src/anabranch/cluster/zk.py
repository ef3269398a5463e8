"""``ZkClient``: kazoo's ZooKeeper client for asyncio code.

kazoo is thread-based: its ``*_async`` calls return an ``IAsyncResult`` completed on kazoo's own threads. Each
coroutine here bridges one of those to an asyncio future with ``loop.call_soon_threadsafe``, so calls pipeline
and never block the event loop. Session state changes (``LOST``, ``SUSPENDED``, ``CONNECTED``) are delivered to
listeners on the event loop. ``.kazoo`` exposes the client for recipes (``Election``, ``DataWatch``,
``ChildrenWatch``); their callbacks run on kazoo's threads and must hand work to the loop themselves
(``ZkClient.call_soon``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState, ZnodeStat

from anabranch.errors import AnabranchError

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT = 4.0
"""Seconds; a dead segment store's containers move after about this long (research/tier1.md: 4 s → 4.2 s)."""


class ClusterUnavailableError(AnabranchError):
    """ZooKeeper cannot be reached (or the session was lost); retry once it is back."""

    retriable = True


StateListener = Callable[[KazooState], None]


class ZkClient:
    """One ZooKeeper session for asyncio code. ``hosts`` is ``host:port[,host:port...]``."""

    def __init__(self, hosts: str, *, session_timeout: float = DEFAULT_SESSION_TIMEOUT,
                 connect_timeout: float = 10.0) -> None:
        self.hosts = hosts
        self.connect_timeout = connect_timeout
        self.kazoo = KazooClient(hosts=hosts, timeout=session_timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[StateListener] = []
        self.kazoo.add_listener(self._on_state)

    @property
    def connected(self) -> bool:
        return bool(self.kazoo.connected)

    async def start(self) -> None:
        """Connect; raise ``ClusterUnavailableError`` (one clear line) when nothing answers in time."""
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self.kazoo.start, self.connect_timeout)
        except (KazooTimeoutError, TimeoutError) as exc:
            await asyncio.to_thread(self.kazoo.stop)
            raise ClusterUnavailableError(
                f"ZooKeeper at {self.hosts} did not answer within {self.connect_timeout:g} s") from exc

    async def stop(self) -> None:
        """Close the session (its ephemeral nodes vanish at once) and stop kazoo's threads."""
        await asyncio.to_thread(self.kazoo.stop)
        await asyncio.to_thread(self.kazoo.close)

    def add_state_listener(self, listener: StateListener) -> None:
        """Call ``listener(state)`` on the event loop whenever the session state changes."""
        self._listeners.append(listener)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the event loop (safe from kazoo's threads)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_state(self, state: KazooState) -> None:
        log.info("ZooKeeper session %s (%s)", state, self.hosts)
        for listener in self._listeners:
            self.call_soon(listener, state)

    async def _wait(self, result: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def done(async_result: Any) -> None:
            def settle() -> None:
                if future.done():
                    return
                try:
                    future.set_result(async_result.get_nowait())
                except Exception as exc:
                    future.set_exception(exc)

            loop.call_soon_threadsafe(settle)

        result.rawlink(done)
        return await future

    async def get(self, path: str, watch: Callable[..., Any] | None = None) -> tuple[bytes, ZnodeStat]:
        value: tuple[bytes, ZnodeStat] = await self._wait(self.kazoo.get_async(path, watch=watch))
        return value

    async def get_or_none(self, path: str) -> tuple[bytes, ZnodeStat] | None:
        try:
            return await self.get(path)
        except NoNodeError:
            return None

    async def exists(self, path: str) -> ZnodeStat | None:
        stat: ZnodeStat | None = await self._wait(self.kazoo.exists_async(path))
        return stat

    async def get_children(self, path: str) -> list[str]:
        children: list[str] = await self._wait(self.kazoo.get_children_async(path))
        return children

    async def set(self, path: str, data: bytes, version: int = -1) -> ZnodeStat:
        """Write ``data``; with ``version`` ≥ 0 only if the znode is at that version (``BadVersionError``)."""
        stat: ZnodeStat = await self._wait(self.kazoo.set_async(path, data, version))
        return stat

    async def create(self, path: str, data: bytes = b"", *, ephemeral: bool = False, sequence: bool = False,
                     makepath: bool = True) -> str:
        created: str = await self._wait(self.kazoo.create_async(path, data, ephemeral=ephemeral, sequence=sequence,
                                                                makepath=makepath))
        return created

    async def create_if_missing(self, path: str, data: bytes = b"") -> bool:
        """Create a persistent znode unless it exists; True when this call created it."""
        try:
            await self.create(path, data)
        except NodeExistsError:
            return False
        return True

    async def ensure_path(self, path: str) -> None:
        await self._wait(self.kazoo.ensure_path_async(path))

    async def delete(self, path: str, version: int = -1, *, recursive: bool = False) -> None:
        if recursive:
            await asyncio.to_thread(self.kazoo.delete, path, version, True)
        else:
            await self._wait(self.kazoo.delete_async(path, version))
