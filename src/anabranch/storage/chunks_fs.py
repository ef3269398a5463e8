"""LTS chunks as files under a root directory (the default LTS backend; can be a shared filesystem).

Owns ``root``: chunk ``a/b/c`` is the file ``root/a/b/c``. Invariants: a write returns only after the
data is ``fdatasync``'d; creating or deleting a chunk fsyncs its directory (and new directories are
fsync'd into their parents), so a chunk that exists after ``create`` returns survives a crash;
blocking I/O runs in worker threads, never on the event loop. A full device (ENOSPC, EDQUOT) raises the
retriable ``StorageFullError`` with nothing left behind: a write is cut back to the chunk's previous length,
a chunk being created is removed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from anabranch.storage.chunk_rules import check_read_range, check_write_offset, validate_chunk_name
from anabranch.storage.file_log import is_no_space
from anabranch.storage.interfaces import Buffer, ChunkExistsError, ChunkNotFoundError, StorageFullError
from anabranch.storage.log_format import fsync_directory, writev_all


class FileSystemChunkStorage:
    """Chunks as files under ``root`` (appendable)."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def supports_append(self) -> bool:
        return True

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, name: str) -> Path:
        return self._root / validate_chunk_name(name)

    async def create(self, name: str) -> None:
        await asyncio.to_thread(self._create, self._path(name))

    def _create(self, path: Path) -> None:
        self._make_directories(path.parent)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            raise ChunkExistsError(f"chunk file {path} already exists") from None
        except OSError as error:
            if is_no_space(error):
                raise StorageFullError(f"no space left to create chunk file {path}") from error
            raise
        try:
            fsync_directory(path.parent)
        except OSError as error:
            if not is_no_space(error):
                raise
            path.unlink(missing_ok=True)
            raise StorageFullError(f"no space left to create chunk file {path}") from error

    def _make_directories(self, directory: Path) -> None:
        if directory.is_dir():
            return
        self._make_directories(directory.parent)
        try:
            directory.mkdir()
        except FileExistsError:
            return
        fsync_directory(directory.parent)

    async def write(self, name: str, offset: int, data: Buffer) -> int:
        return await asyncio.to_thread(self._write, name, offset, data)

    def _write(self, name: str, offset: int, data: Buffer) -> int:
        try:
            fd = os.open(self._path(name), os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk {name!r} does not exist under {self._root}") from None
        try:
            check_write_offset(name, offset, os.fstat(fd).st_size, True)
            try:
                written = writev_all(fd, [data])
                os.fdatasync(fd)
            except OSError as error:
                if not is_no_space(error):
                    raise
                os.ftruncate(fd, offset)
                os.fdatasync(fd)
                raise StorageFullError(f"no space left to write chunk {name!r}") from error
            return written
        finally:
            os.close(fd)

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
        return await asyncio.to_thread(self._path(name).is_file)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._delete, name)

    def _delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ChunkNotFoundError(f"chunk {name!r} does not exist under {self._root}") from None
        fsync_directory(path.parent)

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(_list_files, self._root, prefix)


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
