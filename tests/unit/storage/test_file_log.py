"""The file Tier-1 log: the conformance suite, plus torn tails, corruption, rotation, failures and kill -9."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from anabranch.errors import DataCorruptionError
from anabranch.storage import aligned_io
from anabranch.storage.aligned_io import BLOCK
from anabranch.storage.file_log import FileDurableDataLog
from anabranch.storage.interfaces import LogClosedError
from anabranch.storage.log_format import HEADER, frame_header
from anabranch.testing.log_conformance import DurableDataLogConformance, LogFactory


class TestFileDurableDataLog(DurableDataLogConformance):
    @pytest.fixture
    def log_factory(self, tmp_path: Path) -> LogFactory:
        async def reopen() -> FileDurableDataLog:
            log = FileDurableDataLog(tmp_path / "log", file_size_limit=4096)
            await log.open()
            return log

        return reopen


async def write_log(directory: Path, payloads: list[bytes], file_size_limit: int = 1 << 20) -> None:
    log = FileDurableDataLog(directory, file_size_limit=file_size_limit)
    await log.open()
    for payload in payloads:
        await log.append(payload)
    await log.close()


async def read_log(directory: Path) -> list[tuple[int, bytes]]:
    log = FileDurableDataLog(directory)
    await log.open()
    try:
        return [record async for record in log.iter_records()]
    finally:
        await log.close()


def log_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


async def test_torn_last_record_is_dropped_at_every_cut(tmp_path: Path) -> None:
    payloads = [b"first record", b"second record", b"the last record, which gets torn"]
    await write_log(tmp_path / "source", payloads)
    (source,) = log_files(tmp_path / "source")
    full = source.read_bytes()
    assert len(full) == 3 * BLOCK  # each append was its own batch: one padded block each
    last_start = 2 * BLOCK
    for cut in range(last_start, last_start + 20 + len(payloads[-1])):
        for garbage in (b"", b"\x00" * 7, b"ABL1garbage-garbage-garbage"):
            directory = tmp_path / f"cut-{cut}-{len(garbage)}"
            directory.mkdir()
            (directory / source.name).write_bytes(full[:cut] + garbage)
            log = FileDurableDataLog(directory)
            await log.open()
            assert [record async for record in log.iter_records()] == [(1, payloads[0]), (2, payloads[1])]
            assert await log.append(b"after the tear") == 3
            await log.close()
            assert await read_log(directory) == [(1, payloads[0]), (2, payloads[1]), (3, b"after the tear")]


async def test_garbage_after_complete_records_is_cut(tmp_path: Path) -> None:
    await write_log(tmp_path, [b"a", b"b"])
    (path,) = log_files(tmp_path)
    with path.open("ab") as file:
        file.write(b"\xff" * 100)
    assert await read_log(tmp_path) == [(1, b"a"), (2, b"b")]
    assert path.stat().st_size == 2 * BLOCK


async def test_batches_start_on_block_boundaries_and_padding_is_skipped(tmp_path: Path) -> None:
    log = FileDurableDataLog(tmp_path)
    await log.open()
    assert await log.append(b"alone") == 1
    assert await asyncio.gather(*(log.append(b"x" * 3000) for _ in range(3))) == [2, 3, 4]
    await log.close()
    (path,) = log_files(tmp_path)
    data = path.read_bytes()
    assert len(data) == 4 * BLOCK  # 1 block, then 3 records of 3,020 bytes in one batch: 9,060 bytes, 3 blocks
    assert data[HEADER.size + 5 : BLOCK] == bytes(BLOCK - HEADER.size - 5)
    assert data[BLOCK : BLOCK + 4] == b"ABL1"
    assert [seq for seq, _ in await read_log(tmp_path)] == [1, 2, 3, 4]


async def test_non_zero_bytes_in_the_padding_end_the_log(tmp_path: Path) -> None:
    await write_log(tmp_path, [b"a", b"b"])
    (path,) = log_files(tmp_path)
    data = bytearray(path.read_bytes())
    data[100] = 1  # inside the first batch's padding: the second record can no longer be trusted to follow it
    path.write_bytes(bytes(data))
    assert await read_log(tmp_path) == [(1, b"a")]
    assert path.stat().st_size == HEADER.size + 1


async def test_a_file_without_padding_reads_and_takes_appends(tmp_path: Path) -> None:
    """Files written before batches were block-aligned hold records back to back."""
    records = b"".join(frame_header(sequence, [payload]) + payload for sequence, payload in [(1, b"one"), (2, b"two")])
    (tmp_path / "00000000000000000001.log").write_bytes(records)
    log = FileDurableDataLog(tmp_path)
    await log.open()
    assert await log.append(b"three") == 3
    await log.close()
    assert await read_log(tmp_path) == [(1, b"one"), (2, b"two"), (3, b"three")]


async def test_corrupt_record_in_an_earlier_file_is_data_corruption(tmp_path: Path) -> None:
    await write_log(tmp_path, [bytes([i]) * 100 for i in range(10)], file_size_limit=250)
    files = log_files(tmp_path)
    assert len(files) >= 3
    data = bytearray(files[0].read_bytes())
    data[30] ^= 0x01
    files[0].write_bytes(bytes(data))
    with pytest.raises(DataCorruptionError):
        await read_log(tmp_path)


async def test_missing_middle_file_is_data_corruption(tmp_path: Path) -> None:
    await write_log(tmp_path, [bytes([i]) * 100 for i in range(10)], file_size_limit=250)
    files = log_files(tmp_path)
    files[1].unlink()
    with pytest.raises(DataCorruptionError):
        await read_log(tmp_path)


async def test_files_rotate_and_are_named_by_first_sequence(tmp_path: Path) -> None:
    payloads = [bytes([i]) * 100 for i in range(10)]
    await write_log(tmp_path, payloads, file_size_limit=2 * BLOCK + 1)  # three one-block batches per file
    names = [path.name for path in log_files(tmp_path)]
    assert names == [
        "00000000000000000001.log",
        "00000000000000000004.log",
        "00000000000000000007.log",
        "00000000000000000010.log",
    ]
    assert await read_log(tmp_path) == [(i + 1, p) for i, p in enumerate(payloads)]


async def test_truncate_deletes_only_whole_files(tmp_path: Path) -> None:
    log = FileDurableDataLog(tmp_path, file_size_limit=2 * BLOCK + 1)
    await log.open()
    for i in range(10):
        await log.append(bytes([i]) * 100)
    await log.truncate(5)
    assert [path.name[-8:] for path in log_files(tmp_path)] == ["0004.log", "0007.log", "0010.log"]
    await log.truncate(100)
    assert [path.name[-8:] for path in log_files(tmp_path)] == ["0010.log"]
    await log.close()
    assert [seq for seq, _ in await read_log(tmp_path)] == [10]


async def test_concurrent_appends_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real_durable_write = aligned_io.durable_write

    def counting_durable_write(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        real_durable_write(*args, **kwargs)

    log = FileDurableDataLog(tmp_path)
    await log.open()
    monkeypatch.setattr(aligned_io, "durable_write", counting_durable_write)
    sequences = await asyncio.wait_for(asyncio.gather(*(log.append(b"x" * 100) for _ in range(1000))), 60)
    assert sequences == list(range(1, 1001))
    assert calls < 100
    await log.close()


async def test_failed_fsync_fails_pending_appends_and_closes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = FileDurableDataLog(tmp_path)
    await log.open()
    assert await log.append(b"durable") == 1

    def failing_sync(*args: Any, **kwargs: Any) -> None:
        raise OSError(5, "injected I/O error")

    monkeypatch.setattr(aligned_io, "durable_write", failing_sync)
    results = await asyncio.gather(*(log.append(b"lost") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(result, LogClosedError) for result in results)
    with pytest.raises(LogClosedError):
        await log.append(b"after failure")
    await log.close()
    monkeypatch.undo()
    records = await read_log(tmp_path)
    assert records[0] == (1, b"durable")


async def test_reopen_without_close_keeps_acked_records(tmp_path: Path) -> None:
    log = FileDurableDataLog(tmp_path)
    await log.open()
    await asyncio.gather(*(log.append(b"r%d" % i) for i in range(50)))
    assert len(await read_log(tmp_path)) == 50
    await log.close()


CRASH_SCRIPT = """
import asyncio, sys
from pathlib import Path
from anabranch.storage.file_log import FileDurableDataLog

async def writer(log, worker):
    i = 0
    while True:
        payload = b"%d-%d-" % (worker, i) + b"p" * (i % 5000)
        sequence = await log.append(payload)
        sys.stdout.write("%d %d %d\\n" % (sequence, worker, i))
        sys.stdout.flush()
        i += 1

async def main():
    log = FileDurableDataLog(Path(sys.argv[1]), file_size_limit=200_000)
    await log.open()
    await asyncio.gather(*(writer(log, w) for w in range(8)))

asyncio.run(main())
"""


@pytest.mark.timeout(60)
async def test_kill_9_keeps_every_acked_record(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    acked: dict[int, tuple[int, int]] = {}
    try:
        while len(acked) < 3000:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, "the writer process died before acking enough records"
            sequence, worker, index = map(int, line.split())
            acked[sequence] = (worker, index)
    finally:
        process.kill()
        await asyncio.wait_for(process.wait(), 30)
    records = dict(await read_log(tmp_path))
    for sequence, (worker, index) in acked.items():
        assert records[sequence] == b"%d-%d-" % (worker, index) + b"p" * (index % 5000)
    assert sorted(records) == list(range(1, len(records) + 1))
    assert len(log_files(tmp_path)) > 1
