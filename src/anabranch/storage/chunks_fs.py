"""LTS chunks as files under a root directory (the default LTS backend; can be a shared filesystem).

Owns ``root``: chunk ``a/b/c`` is the file ``root/a/b/c``. Invariants: a write returns only after the
data is ``fdatasync``'d; creating or deleting a chunk fsyncs its directory (and new directories are
fsync'd into their parents), so a chunk that exists after ``create`` returns survives a crash;
blocking I/O runs in worker threads, never on the event loop. A full device (ENOSPC, EDQUOT) raises the
retriable ``StorageFullError`` with nothing left behind: a write is cut back to the chunk's previous length,
a chunk being created is removed.

Creates and writes of concurrent callers are batched (``_IoBatch``): those issued in one turn of the event loop
run as one worker-thread job, which does every create and write first, then each written file's ``fdatasync``,
then one ``fsync`` per directory that gained a file, and answers each caller only then. The storage writer flushes
many small segments at once (each new stream's table segment gets its first chunk), and a thread hop per call
was a large share of the event loop's work per stream create; one ``fdatasync`` per file is still done, but after
all the batch's writes, so the filesystem can commit them together.

Once synced, a write's pages are dropped from the page cache (``POSIX_FADV_DONTNEED``, advisory). Recent segment
bytes are read from the segment store's own block cache, so a second copy in the page cache only costs memory, and
the kernel time of writing into ever new cache pages: dropping them cut the I/O threads' kernel time of a 1 KiB
writer by about 40 % on the 2-core VM (``docs/performance.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anabranch.storage.chunk_rules import check_read_range, check_write_offset, validate_chunk_name
from anabranch.storage.file_log import is_no_space
from anabranch.storage.interfaces import (
    Buffer,
    ChunkExistsError,
    ChunkNotFoundError,
    StorageFullError,
    buffers_of,
)
from anabranch.storage.log_format import fsync_directory, writev_all


@dataclass(slots=True)
class _Io:
    """One create (``data`` is None) or write of a batch, and what became of it."""

    name: str
    path: str
    future: asyncio.Future[int]
    data: Buffer | Sequence[Buffer] | None = None
    offset: int = 0
    fd: int = -1
    written: int = 0
    error: BaseException | None = None


@dataclass(slots=True)
class _IoBatch:
    """Creates and writes issued in one turn of the event loop, run as one worker-thread job."""

    ios: list[_Io] = field(default_factory=list)


class FileSystemChunkStorage:
    """Chunks as files under ``root`` (appendable)."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._root_prefix = os.path.join(str(self._root), "")
        self._batch: _IoBatch | None = None

    @property
    def supports_append(self) -> bool:
        return True

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, name: str) -> str:
        """The chunk's file path, as a plain string: ``pathlib`` interns every path component, and a chunk name
        is unique, so each new chunk grew the interpreter's interned-string table for good."""
        return self._root_prefix + validate_chunk_name(name)

    async def create(self, name: str) -> None:
        await self._submit(_Io(name, self._path(name), asyncio.get_running_loop().create_future()))

    async def write(self, name: str, offset: int, data: Buffer | Sequence[Buffer]) -> int:
        io = _Io(name, self._path(name), asyncio.get_running_loop().create_future(), data, offset)
        return await self._submit(io)

    def _submit(self, io: _Io) -> asyncio.Future[int]:
        if self._batch is None:
            self._batch = _IoBatch()
            asyncio.get_running_loop().call_soon(self._dispatch)
        self._batch.ios.append(io)
        return io.future

    def _dispatch(self) -> None:
        batch, self._batch = self._batch, None
        assert batch is not None
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, self._run_batch, loop, batch)

    def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: _IoBatch) -> None:
        """The worker-thread job: every create and write, then their syncs; then one wake-up of the loop."""
        try:
            for io in batch.ios:
                try:
                    if io.data is None:
                        self._create_file(io.path)
                    else:
                        self._write_data(io)
                except BaseException as error:
                    io.error = error
            for io in batch.ios:
                if io.fd >= 0 and io.error is None:
                    self._sync_data(io)
            self._sync_directories([io for io in batch.ios if io.data is None and io.error is None])
        except BaseException as failure:  # nothing unsynced may be answered as durable
            for io in batch.ios:
                if io.error is None:
                    io.error = failure
            raise
        finally:
            for io in batch.ios:
                if io.fd >= 0:
                    os.close(io.fd)
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits for the answers
                loop.call_soon_threadsafe(_answer, batch.ios)

    def _create_file(self, path: str) -> None:
        self._make_directories(os.path.dirname(path))
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            raise ChunkExistsError(f"chunk file {path} already exists") from None
        except OSError as error:
            if is_no_space(error):
                raise StorageFullError(f"no space left to create chunk file {path}") from error
            raise

    @staticmethod
    def _sync_directories(created: list[_Io]) -> None:
        """One fsync per directory that gained files; a full device removes them (nothing left behind)."""
        directories: dict[str, list[_Io]] = {}
        for io in created:
            directories.setdefault(os.path.dirname(io.path), []).append(io)
        for directory, ios in directories.items():
            try:
                fsync_directory(directory)
            except OSError as error:
                for io in ios:
                    if is_no_space(error):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(io.path)
                        io.error = StorageFullError(f"no space left to create chunk file {io.path}")
                        io.error.__cause__ = error
                    else:
                        io.error = error

    def _write_data(self, io: _Io) -> None:
        try:
            io.fd = os.open(io.path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk {io.name!r} does not exist under {self._root}") from None
        assert io.data is not None
        check_write_offset(io.name, io.offset, os.fstat(io.fd).st_size, True)
        try:
            io.written = writev_all(io.fd, list(buffers_of(io.data)))
        except OSError as error:
            if not is_no_space(error):
                raise
            self._cut_back(io, error)

    def _sync_data(self, io: _Io) -> None:
        try:
            os.fdatasync(io.fd)
            _drop_cached(io.fd, io.offset, io.written)
        except OSError as error:
            if not is_no_space(error):
                io.error = error
                return
            try:
                self._cut_back(io, error)
            except BaseException as failure:
                io.error = failure

    @staticmethod
    def _cut_back(io: _Io, error: OSError) -> None:
        """The device is full: the chunk goes back to its previous length, and the write fails (retriable)."""
        os.ftruncate(io.fd, io.offset)
        os.fdatasync(io.fd)
        raise StorageFullError(f"no space left to write chunk {io.name!r}") from error

    def _make_directories(self, directory: str) -> None:
        if os.path.isdir(directory):
            return
        self._make_directories(os.path.dirname(directory))
        try:
            os.mkdir(directory)
        except FileExistsError:
            return
        fsync_directory(os.path.dirname(directory))

    async def read(self, name: str, offset: int, length: int) -> bytes:
        return await asyncio.to_thread(self._read, name, offset, length)

    def _read(self, name: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk {name!r} does not exist under {self._root}") from None
        try:
            size = os.fstat(fd).st_size
            check_read_range(name, offset, length, size)
            wanted = min(length, size - offset)
            data = os.pread(fd, wanted, offset)
            if len(data) == wanted:
                return data
            buffer = bytearray(data)
            while len(buffer) < wanted:
                more = os.pread(fd, wanted - len(buffer), offset + len(buffer))
                if not more:
                    break
                buffer += more
            return bytes(buffer)
        finally:
            os.close(fd)

    async def length(self, name: str) -> int:
        try:
            return (await asyncio.to_thread(os.stat, self._path(name))).st_size
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk {name!r} does not exist under {self._root}") from None

    async def exists(self, name: str) -> bool:
        return await asyncio.to_thread(os.path.isfile, self._path(name))

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._delete, name)

    def _delete(self, name: str) -> None:
        path = self._path(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk {name!r} does not exist under {self._root}") from None
        fsync_directory(os.path.dirname(path))

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(_list_files, self._root, prefix)


def _answer(ios: list[_Io]) -> None:
    for io in ios:
        if not io.future.done():
            if io.error is None:
                io.future.set_result(io.written)
            else:
                io.future.set_exception(io.error)


def _list_files(root: Path, prefix: str) -> list[str]:
    """Chunk names (paths relative to ``root``) starting with ``prefix``; walks only below its directory."""
    directory = prefix.rpartition("/")[0]
    start = root / directory if directory else root
    names: list[str] = []
    for folder, _, files in os.walk(start):
        relative = Path(folder).relative_to(root).as_posix()
        base = "" if relative == "." else relative + "/"
        names.extend(base + file for file in files if (base + file).startswith(prefix))
    return sorted(names)


def _drop_cached(fd: int, offset: int, length: int) -> None:
    """Advise the kernel to drop the synced range from the page cache; a kernel that cannot is fine."""
    if _FADVISE is not None and length:
        with contextlib.suppress(OSError):
            _FADVISE(fd, offset, length, os.POSIX_FADV_DONTNEED)


_FADVISE = getattr(os, "posix_fadvise", None)
