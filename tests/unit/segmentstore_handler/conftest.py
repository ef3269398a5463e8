"""A fresh in-memory segment store per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from handler_harness import open_store

from anabranch.segmentstore.store import SegmentStore
from anabranch.segmentstore.tables import TableStore


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SegmentStore, TableStore]]:
    store, tables = await open_store(tmp_path)
    try:
        yield store, tables
    finally:
        await store.close()
