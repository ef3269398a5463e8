"""The local-file Tier-1 log: framed, checksummed records in rotating files, group-committed with one fsync.

Owns the files of one directory (format in ``log_format``). Invariants:
- ``append`` assigns the next sequence at call time and returns it only after the record is written
  and synced; one writer task takes EVERYTHING queued, writes it in whole 4 KiB blocks with ``O_DIRECT``
  (``aligned_io``: no page-cache copy; zero padding after the batch) and one sync (``pwritev`` with
  ``RWF_DSYNC`` when the batch fits the staging buffer, else writes and one ``fdatasync``) in the log's own
  I/O thread (so other blocking work cannot delay it), while the next batch accumulates on the event loop;
- a failed write or sync fails every pending append with ``LogClosedError`` and closes the log: nothing
  that may not be durable is ever acked; except a full device (ENOSPC, EDQUOT): the file is cut back to its
  last durable record, every pending append fails with the retriable ``StorageFullError``, their sequence
  numbers are handed out again, and the log stays open, so appends succeed again once space is freed;
- ``open`` verifies every record; a bad record ends the last file (torn tail: the file is cut there, so
  later appends never follow garbage); a bad record in any other file is a ``DataCorruptionError``;
- files rotate once they pass ``file_size_limit``; each is named by its first sequence; creating or
  deleting a file fsyncs the directory; ``truncate`` deletes whole files, never the current one, so
  sequences keep increasing across restarts.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from anabranch.errors import DataCorruptionError
from anabranch.storage.aligned_io import BlockWriter, align_up, open_for_writing
from anabranch.storage.interfaces import Buffer, LogClosedError, StorageFullError, buffers_of
from anabranch.storage.log_format import (
    HEADER,
    file_name,
    frame_header,
    fsync_directory,
    parse_file_name,
    read_records,
    scan_file,
)

log = logging.getLogger(__name__)

DEFAULT_FILE_SIZE_LIMIT = 64 * 1024 * 1024
_T = TypeVar("_T")
_Pending = tuple[int, Sequence[Buffer], "asyncio.Future[int]"]
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_no_space(error: BaseException) -> bool:
    """Whether ``error`` says the device (or the user's quota) is full."""
    return isinstance(error, OSError) and error.errno in _NO_SPACE


class _Headers:
    """The record headers of one batch (``aligned_io.Header``): each record's sequence and crc32."""

    size = HEADER.size

    def __init__(self, batch: list[_Pending]) -> None:
        self._batch = batch

    def __call__(self, index: int, payload: Sequence[Buffer]) -> bytes:
        return frame_header(self._batch[index][0], payload)


@dataclass(slots=True)
class _LogFile:
    path: Path
    first_sequence: int
    last_sequence: int
    size: int


class FileDurableDataLog:
    """A ``DurableDataLog`` in ``directory``. ``open`` it, read ``iter_records`` to recover, then append."""

    def __init__(self, directory: Path, *, file_size_limit: int = DEFAULT_FILE_SIZE_LIMIT) -> None:
        if file_size_limit <= 0:
            raise ValueError(f"file_size_limit must be positive, got {file_size_limit}")
        self._directory = Path(directory)
        self._file_size_limit = file_size_limit
        self._files: list[_LogFile] = []
        self._fd: int | None = None
        self._next_sequence = 1
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = True
        self._failure: BaseException | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._blocks = BlockWriter()

    async def _in_thread(self, function: Callable[..., _T], *args: object) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"log-{self._directory.name}")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def open(self) -> None:
        self._files = await self._in_thread(self._recover)
        current = self._files[-1]
        self._next_sequence = current.last_sequence + 1
        self._fd = open_for_writing(current.path)
        self._closed, self._failure = False, None
        log.info(
            "opened log %s: sequences up to %d in %d files", self._directory, current.last_sequence, len(self._files)
        )

    def _recover(self) -> list[_LogFile]:
        if not self._directory.is_dir():
            self._directory.mkdir(parents=True, exist_ok=True)
            fsync_directory(self._directory.parent)
        found = sorted(
            (first, self._directory / name)
            for name in os.listdir(self._directory)
            if (first := parse_file_name(name)) is not None
        )
        files: list[_LogFile] = []
        for index, (first, path) in enumerate(found):
            if files and files[-1].last_sequence + 1 != first:
                raise DataCorruptionError(
                    f"log file {path} starts at sequence {first} but the previous file ends at "
                    f"{files[-1].last_sequence}; records are missing"
                )
            result = scan_file(path, first)
            if not result.clean:
                if index != len(found) - 1:
                    raise DataCorruptionError(
                        f"log file {path} has a corrupt record at byte {result.good_size} and is not the last "
                        "file; acked records would be lost, so recovery stops"
                    )
                log.warning("log file %s: dropping a torn tail after byte %d", path, result.good_size)
                with path.open("r+b") as file:
                    file.truncate(result.good_size)
                    os.fsync(file.fileno())
            files.append(_LogFile(path, first, result.last_sequence, result.good_size))
        if not files:
            files.append(self._create_file(1))
        return files

    def _create_file(self, first_sequence: int) -> _LogFile:
        path = self._directory / file_name(first_sequence)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        fsync_directory(self._directory)
        return _LogFile(path, first_sequence, first_sequence - 1, 0)

    async def iter_records(self, after: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        for file in list(self._files):
            if file.last_sequence > after:
                for record in read_records(file.path, file.size, after):
                    yield record

    async def append(self, data: Buffer | Sequence[Buffer]) -> int:
        return await self.append_nowait(data)

    def append_nowait(self, data: Buffer | Sequence[Buffer]) -> asyncio.Future[int]:
        """``append`` without waiting: the record's sequence is assigned now, and the future gives it once the record
        is durable. Records complete in call order; a refusal (full device) fails the refused record and every
        record queued after it, so a caller may queue the next record before the previous one is durable."""
        if self._closed:
            raise LogClosedError(f"log {self._directory} is closed") from self._failure
        buffers = buffers_of(data)
        sequence = self._next_sequence
        self._next_sequence += 1
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((sequence, buffers, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        return future

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                current = self._files[-1]
                if current.size >= self._file_size_limit:
                    current = await self._rotate(batch[0][0])
                assert self._fd is not None
                end = await self._in_thread(self._write_batch, self._fd, batch, current.size)
            except StorageFullError as error:
                self._refuse(error, batch)
                continue
            except BaseException as error:
                self._fail(error, batch)
                return
            current.size = end
            current.last_sequence = batch[-1][0]
            for sequence, _, future in batch:
                if not future.done():
                    future.set_result(sequence)

    def _write_batch(self, fd: int, batch: list[_Pending], durable_size: int) -> int:
        """Write and sync ``batch`` from the first block boundary after ``durable_size``; returns the new end."""
        start = align_up(durable_size)
        try:
            end = start + self._blocks.write(fd, [parts for _, parts, _ in batch], start, _Headers(batch))
        except OSError as error:
            if not is_no_space(error):
                raise
            os.ftruncate(fd, durable_size)  # a failure here closes the log (the file may hold a partial record)
            os.fdatasync(fd)
            raise StorageFullError(f"no space left for the log file ({error.strerror})") from error
        return end

    def _refuse(self, error: StorageFullError, batch: list[_Pending]) -> None:
        """Nothing of ``batch`` was written: fail it and everything queued after it, reuse their sequences."""
        refused = batch + self._pending
        self._pending = []
        self._next_sequence = batch[0][0]
        log.warning("log %s: no space left; refused %d appends (nothing written)", self._directory, len(refused))
        for _, _, future in refused:
            if not future.done():
                failure = StorageFullError(f"log {self._directory}: {error}; the append was not written")
                failure.__cause__ = error
                future.set_exception(failure)

    async def _rotate(self, first_sequence: int) -> _LogFile:
        try:
            new_file = await self._in_thread(self._create_file, first_sequence)
        except OSError as error:
            if not is_no_space(error):
                raise
            (self._directory / file_name(first_sequence)).unlink(missing_ok=True)
            raise StorageFullError(f"no space left for a new log file ({error.strerror})") from error
        new_fd = open_for_writing(new_file.path)
        assert self._fd is not None
        os.close(self._fd)
        self._fd = new_fd
        self._files.append(new_file)
        return new_file

    def _fail(self, error: BaseException, batch: list[_Pending]) -> None:
        log.error(
            "log %s failed; closing it and failing %d pending appends: %r",
            self._directory,
            len(batch) + len(self._pending),
            error,
        )
        self._closed = True
        self._failure = error
        for _, _, future in batch + self._pending:
            if not future.done():
                failure = LogClosedError(f"log {self._directory} failed ({error!r}); the append is not durable")
                failure.__cause__ = error
                future.set_exception(failure)
        self._pending = []

    async def truncate(self, up_to: int) -> None:
        doomed = [file for file in self._files[:-1] if file.last_sequence <= up_to]
        if not doomed:
            return
        self._files = [file for file in self._files if all(file is not gone for gone in doomed)]
        await self._in_thread(self._delete_files, [file.path for file in doomed])

    def _delete_files(self, paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)
        fsync_directory(self._directory)

    async def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            await asyncio.wait([self._writer])
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._blocks.close()

    @property
    def directory(self) -> Path:
        return self._directory
