"""Fixtures: the fake segment store and controller of fakes.py, started per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from client_write_fakes import FakeController, FakeSegmentStore


@pytest.fixture
async def fake_store() -> AsyncIterator[FakeSegmentStore]:
    store = await FakeSegmentStore().start()
    try:
        yield store
    finally:
        await store.stop()


@pytest.fixture
def fake_controller(fake_store: FakeSegmentStore) -> FakeController:
    return FakeController(fake_store)
