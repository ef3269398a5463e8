"""Block-aligned writes for the file Tier-1 log: ``O_DIRECT`` where the filesystem allows it, through one reusable
page-aligned staging buffer per log.

Why: written through the page cache, every Tier-1 byte is first copied into newly allocated cache pages, which the
kernel then writes back. On the 2-core VMs this project is measured on, that copy
(``copy_folio_from_iter_atomic`` in ``perf``) was over half of a writing segment store's CPU: the Tier-1 log and the
LTS chunks each write every byte once. With ``O_DIRECT`` the device reads the staging buffer itself; the Tier-1
thread's kernel time per written byte falls by more than half (figures in ``docs/performance.md``).

``O_DIRECT`` needs the file offset, the length and the memory aligned to the device's block. So every write starts on
a ``BLOCK`` boundary and ends padded with zeros to the next one; ``log_format`` skips that padding when it scans a
file. A filesystem that refuses ``O_DIRECT`` (tmpfs) gets the same aligned writes through the page cache.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Sequence
from pathlib import Path

from anabranch.storage.interfaces import Buffer

BLOCK = 4096
STAGING_BYTES = 1 << 20
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_ZEROS = bytes(BLOCK)


def align_up(offset: int) -> int:
    """The first block boundary at or after ``offset``."""
    return -(-offset // BLOCK) * BLOCK


def open_for_writing(path: Path) -> int:
    """Open ``path`` for positioned writes, with ``O_DIRECT`` unless its filesystem refuses it."""
    if _O_DIRECT:
        try:
            return os.open(path, os.O_WRONLY | _O_DIRECT)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
    return os.open(path, os.O_WRONLY)


class BlockWriter:
    """Copies buffers into a page-aligned staging buffer and writes it out in whole blocks. One per log, used only on
    the log's I/O thread. The staging buffer is mapped on first use; only the pages a write touches become resident,
    so a log that only ever writes small records keeps a few pages of it."""

    def __init__(self, staging_bytes: int = STAGING_BYTES) -> None:
        if staging_bytes <= 0 or staging_bytes % BLOCK:
            raise ValueError(f"staging_bytes must be a positive multiple of {BLOCK}, got {staging_bytes}")
        self._staging_bytes = staging_bytes
        self._staging: mmap.mmap | None = None

    def write(self, fd: int, buffers: Sequence[Buffer], offset: int) -> int:
        """Write ``buffers`` back to back at ``offset`` (a block boundary), zero-padded to a whole block; returns the
        number of bytes written, padding included."""
        if offset % BLOCK:
            raise ValueError(f"offset {offset} is not a multiple of {BLOCK}")
        if self._staging is None:
            self._staging = mmap.mmap(-1, self._staging_bytes)
        staging, capacity = self._staging, self._staging_bytes
        filled, written = 0, 0
        for buffer in buffers:
            view = memoryview(buffer).cast("B")
            while view.nbytes:
                take = min(view.nbytes, capacity - filled)
                staging[filled : filled + take] = view[:take]
                filled += take
                view = view[take:]
                if filled == capacity:
                    written += _pwrite_all(fd, staging, capacity, offset + written)
                    filled = 0
        if filled:
            end = align_up(filled)
            staging[filled:end] = _ZEROS[: end - filled]
            written += _pwrite_all(fd, staging, end, offset + written)
        return written

    def close(self) -> None:
        if self._staging is not None:
            self._staging.close()
            self._staging = None


def _pwrite_all(fd: int, staging: mmap.mmap, length: int, offset: int) -> int:
    with memoryview(staging) as view:
        done = 0
        while done < length:
            done += os.pwrite(fd, view[done:length], offset + done)
    return length
