"""A key-value table create that fails half way leaves a marked record, not orphans: the table stays invisible
until the sweep (or the next create) finishes it, and deleting it removes the partitions that exist."""

from __future__ import annotations

import pytest

from anabranch.controller.errors import NotFoundError, SegmentStoreUnavailableError
from anabranch.controller.facade import Controller
from anabranch.controller.kvtables import kvt_segment_name
from anabranch.controller.segment_helper_memory import InMemorySegmentStore
from anabranch.protocol import controller_pb2 as pb


class FailingStore(InMemorySegmentStore):
    """Refuses table creates after ``allowed`` of them (a segment store that went away mid-workflow)."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed: int | None = None

    async def create_table(self, name: str, key_length: int = 0) -> bool:
        if self.allowed is not None:
            if self.allowed <= 0:
                raise SegmentStoreUnavailableError(f"gone while creating {name}")
            self.allowed -= 1
        return await super().create_table(name, key_length)


CONFIG = pb.KeyValueTableConfig(scope="sc", kvtName="t", partitionCount=100, primaryKeyLength=4)


async def _half_created() -> tuple[Controller, FailingStore]:
    store = FailingStore()
    controller = Controller(store, "127.0.0.1", 1)
    await controller.bootstrap()
    await controller.streams.create_scope("sc")
    store.allowed = 40
    with pytest.raises(SegmentStoreUnavailableError):
        await controller.kvtables.create(CONFIG)
    store.allowed = None
    with pytest.raises(NotFoundError):
        await controller.kvtables.config("sc", "t")
    return controller, store


def partitions(store: InMemorySegmentStore) -> int:
    return sum(1 for n in range(CONFIG.partitionCount) if kvt_segment_name("sc", "t", n) in store.tables)


async def test_the_sweep_finishes_a_failed_create() -> None:
    controller, store = await _half_created()
    assert 0 < partitions(store) < CONFIG.partitionCount
    await controller.resume_all()
    assert await controller.kvtables.config("sc", "t") == CONFIG
    assert partitions(store) == CONFIG.partitionCount


async def test_a_retried_create_finishes_it_and_delete_cleans_up() -> None:
    controller, store = await _half_created()
    assert await controller.kvtables.create(CONFIG) == "SUCCESS"
    assert partitions(store) == CONFIG.partitionCount
    assert await controller.kvtables.delete("sc", "t") == "SUCCESS"
    assert partitions(store) == 0
    controller, store = await _half_created()
    assert await controller.kvtables.delete("sc", "t") == "SUCCESS"
    assert partitions(store) == 0
    assert await controller.kvtables.create(CONFIG) == "SUCCESS"
