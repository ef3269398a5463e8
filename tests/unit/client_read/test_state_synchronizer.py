"""StateSynchronizer: two clients converge through conditional updates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from client_read_fakes import FakeStore, router

from anabranch.client.state_synchronizer import (
    RevisionedTableClient,
    StateSynchronizer,
    synchronizer_segment,
)
from anabranch.client.table_client import TableSegmentClient


class Codec:
    def serialize(self, state: list[int]) -> bytes:
        return json.dumps(state).encode()

    def deserialize(self, data: bytes) -> list[int]:
        return list(json.loads(data))


def appender(value: int) -> Callable[[list[int]], tuple[list[int], None]]:
    return lambda state: ([*state, value], None)


def synchronizer(store: FakeStore) -> StateSynchronizer[list[int]]:
    table = TableSegmentClient(router(store), synchronizer_segment("sc", "sync"))
    return StateSynchronizer(RevisionedTableClient(table), Codec())


async def test_two_clients_converge() -> None:
    store = FakeStore()
    a, b = synchronizer(store), synchronizer(store)
    assert await a.initialize([]) is True
    assert await b.initialize([99]) is False
    assert b.state == []

    async def add(sync: StateSynchronizer[list[int]], base: int) -> None:
        for i in range(20):
            await sync.update_state(appender(base + i))

    await asyncio.gather(add(a, 0), add(b, 100))
    await a.fetch_updates()
    await b.fetch_updates()
    assert a.state == b.state and sorted(a.state) == list(range(20)) + list(range(100, 120))
    assert a.revision == b.revision
    assert await a.fetch_updates() is False


async def test_updater_returning_none_writes_nothing() -> None:
    store = FakeStore()
    sync = synchronizer(store)
    await sync.initialize([1])
    revision = sync.revision
    assert await sync.update_state(lambda s: (None, len(s))) == 1
    assert sync.revision == revision
