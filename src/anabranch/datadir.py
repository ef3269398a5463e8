"""One server per data directory: an exclusive lock held for the life of the process.

Two servers writing the same Tier-1 logs destroy each other's data (the second one's log tail looks torn to the
first, which then drops acknowledged records). ``lock_data_dir`` makes the directory (checking that it is a
directory the process can write), opens ``DATA_DIR/anabranch.lock`` and takes an exclusive ``fcntl.flock`` on it
without waiting. The lock belongs to the open file, so it lasts until the process exits (or ``release``), also
after a crash or ``kill -9``: the kernel drops it then, and a stale file never blocks a restart. The file holds
a line naming the holder (pid, what it serves), which a refused server quotes.

A data directory also records its segment-container count (``DATA_DIR/containers``), written the first time a
server uses it: segments are routed to containers by a hash modulo that count, so a server started later with
another count would look for every segment in the wrong container. ``settle_container_count`` refuses that with one
line. Directories from before the record get it from the Tier-1 logs they hold (one per container).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from anabranch.errors import AnabranchError
from anabranch.storage.log_format import fsync_directory

LOCK_FILE = "anabranch.lock"
CONTAINERS_FILE = "containers"


class DataDirError(AnabranchError):
    """The data directory cannot be used: not a directory, not writable."""


class DataDirInUseError(DataDirError):
    """Another server holds the data directory's lock."""

    retriable = True


class ContainerCountMismatchError(DataDirError):
    """``--containers`` disagrees with the count the data directory was created with."""


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


def settle_container_count(data_dir: Path, requested: int | None, default: int) -> int:
    """The segment-container count of ``data_dir`` (whose lock the caller holds): the recorded one; else, for a
    directory from before the record, the number of its Tier-1 logs; else ``requested`` or ``default``, which is
    then recorded. A ``requested`` count that differs from the directory's raises ``ContainerCountMismatchError``."""
    existing = _recorded_container_count(data_dir)
    if existing is None:
        existing = _tier1_logs(data_dir)
        if existing is not None:
            _record_container_count(data_dir, existing)
    if existing is not None:
        if requested is not None and requested != existing:
            raise ContainerCountMismatchError(
                f"data directory {data_dir} holds {existing} segment container{'s' if existing > 1 else ''}; "
                f"--containers {requested} would "
                f"route its segments to the wrong ones. Drop --containers (or pass {existing}), or use a new "
                "--data-dir")
        return existing
    count = requested if requested is not None else default
    _record_container_count(data_dir, count)
    return count


def _recorded_container_count(data_dir: Path) -> int | None:
    path = data_dir / CONTAINERS_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.isdigit() or int(text) <= 0:
        raise DataDirError(f"{path} should hold a positive container count, not {text[:40]!r}; restore it (the "
                           "number of directories under tier1/) or use a new --data-dir")
    return int(text)


def _tier1_logs(data_dir: Path) -> int | None:
    """How many containers a directory from before the record has (its Tier-1 logs are ``tier1/0`` .. ``N-1``)."""
    tier1 = data_dir / "tier1"
    if not tier1.is_dir():
        return None
    ids = [int(entry.name) for entry in tier1.iterdir() if entry.is_dir() and entry.name.isdigit()]
    return max(ids) + 1 if ids else None


def _record_container_count(data_dir: Path, count: int) -> None:
    """Write the record durably: a temporary file, fsync'd, renamed over the record, and the directory fsync'd."""
    path = data_dir / CONTAINERS_FILE
    temporary = data_dir / (CONTAINERS_FILE + ".tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, f"{count}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        fsync_directory(data_dir)
    except OSError as exc:
        raise DataDirError(f"cannot record the container count in {path}: {exc.strerror or exc}") from None
