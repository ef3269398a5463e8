"""The operation processor hands the next record to a pipelining log (the file log's ``append_nowait``) while the
previous one is being written, still applies records in order and only once durable, and a refused record takes
the records queued behind it down with it (issue 15: the Tier-1 writer does not wait for the event loop)."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.durable_log import RECORDS_IN_FLIGHT, CheckpointRequest, OperationProcessor
from anabranch.segmentstore.errors import ContainerClosedError, DiskFullError
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.file_log import FileDurableDataLog
from anabranch.storage.interfaces import Buffer, LogClosedError, StorageFullError
from anabranch.storage.memory_log import InMemoryDurableDataLog

SEG = "s/t/0.#epoch.0"


class GatedFileLog(FileDurableDataLog):
    """A file log whose writer thread waits for the test before each write (and can refuse one as if full)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.refuse_next = False
        self.batches: list[list[int]] = []

    def _write_batch(self, fd: int, batch: Sequence[tuple[int, Sequence[Buffer], object]],  # type: ignore[override]
                     durable_size: int) -> int:
        self.entered.set()
        if not self.gate.wait(10):
            raise TimeoutError("the test never opened the gate")
        self.batches.append([sequence for sequence, _, _ in batch])
        if self.refuse_next:
            self.refuse_next = False
            raise StorageFullError("no space left (test)")
        return super()._write_batch(fd, batch, durable_size)  # type: ignore[arg-type]

    @property
    def queued(self) -> int:
        """Records waiting for the writer thread (handed to the log, not yet being written)."""
        return len(self._pending)


async def open_container(log: FileDurableDataLog, records_in_flight: int = 2) -> SegmentContainer:
    """A container handing its log up to ``records_in_flight`` records at once (by default two, which is what most
    of these tests are about; the container's own default is one: see ``RECORDS_IN_FLIGHT``)."""
    storage = ChunkedSegmentStorage(InMemoryChunkStorage())
    await storage.open()
    container = SegmentContainer(0, log, storage, records_in_flight=records_in_flight)
    await container.start()
    await container.create_segment(SEG)
    return container


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (a state of the writer thread, which no asyncio event announces), at most 10 s."""
    try:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


async def test_the_next_record_reaches_the_log_while_the_previous_one_is_written(tmp_path: Path) -> None:
    log = GatedFileLog(tmp_path / "tier1")
    container = await open_container(log)
    log.gate.clear()
    log.entered.clear()
    first = asyncio.create_task(container.append(SEG, b"first"))
    await until(log.entered.is_set, "the first record is being written")
    second = asyncio.create_task(container.append(SEG, b"second"))
    await until(lambda: log.queued == 1, "the second record waits in the log, not in the processor")
    assert (await container.get_info(SEG)).length == 0  # nothing applied before it is durable
    log.gate.set()
    assert (await asyncio.wait_for(first, 10)).new_length == 5
    assert (await asyncio.wait_for(second, 10)).new_length == 11
    assert log.batches[-2:] == [[log.batches[-2][0]], [log.batches[-2][0] + 1]]
    assert bytes((await container.read(SEG, 0, 100)).data) == b"firstsecond"
    await container.close()


async def test_by_default_the_next_record_takes_everything_queued_while_one_is_written(tmp_path: Path) -> None:
    log = GatedFileLog(tmp_path / "tier1")
    container = await open_container(log, records_in_flight=RECORDS_IN_FLIGHT)
    log.gate.clear()
    log.entered.clear()
    first = asyncio.create_task(container.append(SEG, b"first"))
    await until(log.entered.is_set, "the first record is being written")
    later = [asyncio.create_task(container.append(SEG, part)) for part in (b"-a", b"-b", b"-c")]
    await until(lambda: len(container._processor._queue) == 3, "the later appends wait in the processor")
    assert log.queued == 0  # nothing handed to the log behind the record being written
    log.gate.set()
    assert [(await asyncio.wait_for(task, 10)).new_length for task in (first, *later)] == [5, 7, 9, 11]
    assert log.batches[-2:] == [[log.batches[-2][0]], [log.batches[-2][0] + 1]]  # the three went as one record
    assert bytes((await container.read(SEG, 0, 100)).data) == b"first-a-b-c"
    await container.close()


async def test_a_refused_record_fails_the_record_queued_behind_it_and_writes_resume(tmp_path: Path) -> None:
    log = GatedFileLog(tmp_path / "tier1")
    container = await open_container(log)
    log.gate.clear()
    log.entered.clear()
    log.refuse_next = True
    first = asyncio.create_task(container.append(SEG, b"first"))
    await until(log.entered.is_set, "the first record is being written")
    second = asyncio.create_task(container.append(SEG, b"second"))
    await until(lambda: log.queued == 1, "the second record waits in the log")
    log.gate.set()
    for task in (first, second):
        with pytest.raises(DiskFullError):
            await asyncio.wait_for(task, 10)
    assert (await container.get_info(SEG)).length == 0
    assert (await container.append(SEG, b"third")).new_length == 5  # the staged state was rolled back
    assert bytes((await container.read(SEG, 0, 100)).data) == b"third"
    await container.close()
    reopened = GatedFileLog(tmp_path / "tier1")
    await reopened.open()
    records = [payload async for _, payload in reopened.iter_records()]
    assert not any(b"first" in bytes(r) or b"second" in bytes(r) for r in records)
    await reopened.close()


async def test_a_log_that_refuses_a_record_at_the_call_fails_its_operations_and_the_container(tmp_path: Path) -> None:
    log = GatedFileLog(tmp_path / "tier1")
    container = await open_container(log)

    def closed(data: object) -> asyncio.Future[int]:
        raise LogClosedError("the log went away (test)")

    log.append_nowait = closed  # type: ignore[method-assign]
    with pytest.raises(ContainerClosedError):
        await asyncio.wait_for(container.append(SEG, b"lost"), 10)
    with pytest.raises(ContainerClosedError):
        await container.append(SEG, b"after")
    await container.abort()


class Snapshot(bytearray):
    """A checkpoint's bytes that can be watched with a weak reference."""


@pytest.mark.parametrize("kind", ["pipelined file log", "serial memory log"])
async def test_an_idle_processor_keeps_no_written_record(tmp_path: Path, kind: str) -> None:
    """A checkpoint holds every segment (tens of MB at 100,000 streams): once written and applied, nothing of the
    processor may keep its bytes alive while it waits for the next record."""
    log = FileDurableDataLog(tmp_path / "tier1") if kind == "pipelined file log" else InMemoryDurableDataLog()
    await log.open()
    processor = OperationProcessor(0, log, lambda op, sequence: None)
    processor.start()
    try:
        held = [Snapshot(b"every segment" * 1000)]
        watched = weakref.ref(held[0])
        sequence = await asyncio.wait_for(processor.submit(CheckpointRequest(held.pop)), 10)  # the test lets go
        assert sequence >= 1 and not held
        for _ in range(100):  # the processor lets go of the record once it goes back to waiting
            if watched() is None:
                break
            await asyncio.sleep(0)
        assert watched() is None
    finally:
        await processor.close()
        await log.close()
