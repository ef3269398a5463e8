"""Operation processor: group commit, apply-after-durable, and failure of the Tier-1 log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest

from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.errors import ContainerClosedError
from anabranch.segmentstore.operations import (
    Append,
    CreateSegment,
    Merge,
    MergeSource,
    Operation,
    Seal,
    decode_record,
    encode_into,
)
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.interfaces import Buffer
from anabranch.storage.memory_log import InMemoryDurableDataLog


class GatedLog(InMemoryDurableDataLog):
    """An in-memory log whose appends wait for the test to open a gate, and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False
        self.started = asyncio.Event()

    async def append(self, data: Buffer | Sequence[Buffer]) -> int:
        self.started.set()
        await self.gate.wait()
        if self.fail:
            raise OSError("disk full")
        return await super().append(data)


async def open_container(log: InMemoryDurableDataLog) -> SegmentContainer:
    storage = ChunkedSegmentStorage(InMemoryChunkStorage())
    await storage.open()
    container = SegmentContainer(0, log, storage)
    await container.start()
    return container


def test_operations_round_trip() -> None:
    ops: list[Operation] = [
        CreateSegment(3, "a/b/0.#epoch.0", 1, 5, 0, True, 123),
        Append(3, 0, b"hello", uuid.UUID(int=9), 4),
        Append(3, 5, memoryview(b"xy"), None, 0),
        Seal(3, 7),
        Merge(3, (MergeSource(4, 7, 10), MergeSource(5, 17, 0))),
    ]
    buffers: list[Buffer] = []
    for op in ops:
        encode_into(op, buffers)
    decoded = list(decode_record(b"".join(bytes(b) for b in buffers)))
    assert [type(op) for op in decoded] == [type(op) for op in ops]
    assert decoded[0] == ops[0] and decoded[3] == ops[3] and decoded[4] == ops[4]
    assert isinstance(decoded[1], Append) and bytes(decoded[1].data) == b"hello"
    assert decoded[1].writer_id == uuid.UUID(int=9) and decoded[1].event_number == 4
    assert isinstance(decoded[2], Append) and decoded[2].writer_id is None and bytes(decoded[2].data) == b"xy"


async def test_nothing_visible_before_durable_and_one_record_per_batch() -> None:
    log = GatedLog()
    container = await open_container(log)
    await container.create_segment("s/t/0.#epoch.0")
    log.gate.clear()
    log.started.clear()
    first = asyncio.create_task(container.append("s/t/0.#epoch.0", b"a"))
    await asyncio.wait_for(log.started.wait(), 5)
    rest = [asyncio.create_task(container.append("s/t/0.#epoch.0", b"b")) for _ in range(20)]
    await asyncio.sleep(0)
    assert (await container.get_info("s/t/0.#epoch.0")).length == 0
    assert (await container.read("s/t/0.#epoch.0", 0, 10)).data == b""
    records_before = log.last_sequence
    log.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 5)
    assert log.last_sequence - records_before == 2
    assert (await container.get_info("s/t/0.#epoch.0")).length == 21
    await container.close()


async def test_log_failure_fails_pending_operations_and_closes_container() -> None:
    log = GatedLog()
    container = await open_container(log)
    await container.create_segment("s/t/0.#epoch.0")
    tail_read = asyncio.create_task(container.read("s/t/0.#epoch.0", 0, 10, wait_timeout=60))
    log.gate.clear()
    pending = [asyncio.create_task(container.append("s/t/0.#epoch.0", b"x")) for _ in range(5)]
    await asyncio.sleep(0)
    log.fail = True
    log.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5)
    assert all(isinstance(r, ContainerClosedError) and r.retriable for r in results)
    with pytest.raises(ContainerClosedError):
        await container.append("s/t/0.#epoch.0", b"y")
    with pytest.raises(ContainerClosedError):
        await container.get_info("s/t/0.#epoch.0")
    with pytest.raises(ContainerClosedError):
        await asyncio.wait_for(tail_read, 5)
    await container.abort()
