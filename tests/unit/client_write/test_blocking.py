"""The blocking facade runs client coroutines on its loop thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator

from anabranch.client.blocking import Blocking, LoopThread


class _Resource:
    __module__ = "anabranch.client.fake"

    def __init__(self) -> None:
        self.closed = False
        self.thread_loop: asyncio.AbstractEventLoop | None = None

    async def add(self, a: int, b: int) -> int:
        self.thread_loop = asyncio.get_running_loop()
        return a + b

    async def items(self) -> AsyncIterator[int]:
        for i in range(3):
            yield i

    async def ack(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, future.set_result, None)
        return future

    async def child(self) -> _Resource:
        return _Resource()

    async def close(self) -> None:
        self.closed = True


def test_calls_run_on_the_loop_thread() -> None:
    runner = LoopThread()
    try:
        resource = _Resource()
        with Blocking(resource, runner) as proxy:
            assert proxy.add(2, 3) == 5
            assert resource.thread_loop is runner.loop
            assert proxy.items() == [0, 1, 2]
            ack = proxy.ack()
            assert isinstance(ack, concurrent.futures.Future)
            assert ack.result(timeout=5) is None
            assert isinstance(proxy.child(), Blocking)
        assert resource.closed
    finally:
        runner.stop()
