"""Disk full at the Tier-1 write seam (fault injection: ``writev`` fails with ENOSPC after writing part of a batch):
the append fails with the retriable DiskFullError, nothing of it remains in the log, health says ``disk_full``,
reads keep working, writes resume by themselves once space is back, and a restart finds exactly the acknowledged
data. The real-filesystem version is tests/integration/robustness/test_disk_full_tmpfs.py."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from anabranch.segmentstore.errors import DiskFullError
from anabranch.segmentstore.store import container_id_for, open_segment_store
from anabranch.storage.aligned_io import BlockWriter, Header
from anabranch.storage.file_log import FileDurableDataLog
from anabranch.storage.interfaces import Buffer, StorageFullError

SEG = "scope/stream/0.#epoch.0"


class FullDisk:
    """While ``full``, every log write writes half of its first record's first buffer and then fails with ENOSPC."""

    def __init__(self) -> None:
        self.full = False
        self.refused = 0
        self._write = BlockWriter.write

    def write(self, writer: BlockWriter, fd: int, records: Sequence[Sequence[Buffer]], offset: int,
              header: Header) -> int:
        if not self.full:
            return self._write(writer, fd, records, offset, header)
        self.refused += 1
        first = memoryview(records[0][0]).cast("B")
        self._write(writer, fd, [[first[: max(1, first.nbytes // 2)]]], offset, header)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[FullDisk]:
    fake = FullDisk()

    def write(writer: BlockWriter, fd: int, records: Sequence[Sequence[Buffer]], offset: int, header: Header) -> int:
        return fake.write(writer, fd, records, offset, header)

    monkeypatch.setattr(BlockWriter, "write", write)
    yield fake


async def test_file_log_refuses_without_closing_and_reuses_sequences(tmp_path: Path, disk: FullDisk) -> None:
    log = FileDurableDataLog(tmp_path)
    await log.open()
    assert await log.append(b"one") == 1
    disk.full = True
    results = await asyncio.gather(*(log.append(b"refused") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, StorageFullError) and r.retriable for r in results), results
    disk.full = False
    assert await log.append(b"two") == 2
    await log.close()
    reopened = FileDurableDataLog(tmp_path)
    await reopened.open()
    assert [(seq, bytes(data)) async for seq, data in reopened.iter_records()] == [(1, b"one"), (2, b"two")]
    await reopened.close()


async def test_container_refuses_writes_while_full_and_resumes(tmp_path: Path, disk: FullDisk) -> None:
    store = await open_segment_store(tmp_path, 2)
    try:
        await store.create_segment(SEG)
        await store.append(SEG, b"acked-1;")
        disk.full = True
        with pytest.raises(DiskFullError) as refused:
            await store.append(SEG, b"refused;")
        assert refused.value.retriable and "no space left" in str(refused.value)
        with pytest.raises(DiskFullError):
            await store.create_segment("scope/stream/9.#epoch.0")
        health = store.health()
        state = {c.container_id: c.state for c in health.containers}
        assert state[container_id_for(SEG, 2)] == "disk_full" and not health.ready, health.as_dict()
        assert not health.failed
        assert bytes((await store.read(SEG, 0, 100)).data) == b"acked-1;"
        disk.full = False
        result = await store.append(SEG, b"acked-2;")
        assert result.new_length == len(b"acked-1;acked-2;")
        await store.create_segment("scope/stream/9.#epoch.0")
        assert store.health().ready
        assert disk.refused >= 2
    finally:
        await store.close()
    reopened = await open_segment_store(tmp_path, 2)
    try:
        assert bytes((await reopened.read(SEG, 0, 100)).data) == b"acked-1;acked-2;"
        assert (await reopened.get_info("scope/stream/9.#epoch.0")).length == 0
    finally:
        await reopened.close()
