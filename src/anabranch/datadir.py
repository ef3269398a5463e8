"""One server per data directory: an exclusive lock held for the life of the process.

Two servers writing the same Tier-1 logs destroy each other's data (the second one's log tail looks torn to the
first, which then drops acknowledged records). ``lock_data_dir`` makes the directory (checking that it is a
directory the process can write), opens ``DATA_DIR/anabranch.lock`` and takes an exclusive ``fcntl.flock`` on it
without waiting. The lock belongs to the open file, so it lasts until the process exits (or ``release``), also
after a crash or ``kill -9``: the kernel drops it then, and a stale file never blocks a restart. The file holds
a line naming the holder (pid, what it serves), which a refused server quotes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from anabranch.errors import AnabranchError

LOCK_FILE = "anabranch.lock"


class DataDirError(AnabranchError):
    """The data directory cannot be used: not a directory, not writable."""


class DataDirInUseError(DataDirError):
    """Another server holds the data directory's lock."""

    retriable = True


class DataDirLock:
    """A held lock on a data directory; ``describe`` updates the holder line once the ports are known."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    def describe(self, serving: str) -> None:
        """Record what this process serves (e.g. ``segment store 127.0.0.1:12345``) next to its pid."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()}, {serving}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def prepare_data_dir(data_dir: Path) -> Path:
    """Create ``data_dir`` if needed; ``DataDirError`` with one actionable line when it cannot be used."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirError(f"data directory {data_dir} is not a directory; name a directory with --data-dir")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"cannot create data directory {data_dir}: {exc.strerror or exc}") from None
    return data_dir


def lock_data_dir(data_dir: Path) -> DataDirLock:
    """Take the data directory's exclusive lock; ``DataDirInUseError`` naming the holder if another server has it."""
    prepare_data_dir(data_dir)
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise DataDirError(f"data directory {data_dir} is not writable: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise DataDirInUseError(
            f"data directory {data_dir} is in use by another anabranch server ({holder or 'holder unknown'}); "
            "stop it or choose another --data-dir") from None
    except OSError as exc:
        os.close(fd)
        raise DataDirError(f"cannot lock data directory {data_dir}: {exc.strerror or exc}") from None
    lock = DataDirLock(data_dir, fd)
    try:
        lock.describe("starting")
    except OSError as exc:
        lock.release()
        raise DataDirError(f"data directory {data_dir} is not writable: {exc.strerror or exc}") from None
    return lock


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 512, 0).decode(errors="replace").strip()
    return ""
