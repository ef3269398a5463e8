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

import contextlib
import errno
import mmap
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from anabranch.storage.interfaces import Buffer

BLOCK = 4096
STAGING_BYTES = 4 << 20
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_RWF_DSYNC = getattr(os, "RWF_DSYNC", 0)
_dsync = bool(_RWF_DSYNC) and hasattr(os, "pwritev")
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
    """Copies records into a page-aligned staging buffer and writes it out in whole blocks, durably. One per log, used
    only on the log's I/O thread. The staging buffer is mapped on first use; only the pages a write touches become
    resident, so a log that only ever writes small records keeps a few pages of it.

    Why records and not buffers: the I/O thread needs the GIL again after every call that releases it (a checksum over
    a large buffer, a write, a sync), and while the event loop is busy it waits for it, often longer than the call took
    (measured: a Tier-1 batch of ~500 KB spent 0.25 ms on ten crc32 calls, one per appended block, and its write and
    its sync each ended with another wait). So a record that fits in the staging buffer is copied first and its
    header computed over the staged copy (one checksum call), and a batch that fits is written and made durable with
    one ``pwritev(RWF_DSYNC)``: one release of the GIL instead of one per block plus two."""

    def __init__(self, staging_bytes: int = STAGING_BYTES) -> None:
        if staging_bytes <= 0 or staging_bytes % BLOCK:
            raise ValueError(f"staging_bytes must be a positive multiple of {BLOCK}, got {staging_bytes}")
        self._staging_bytes = staging_bytes
        self._staging: mmap.mmap | None = None

    def write(self, fd: int, records: Sequence[Sequence[Buffer]], offset: int, header: Header) -> int:
        """Write ``records`` back to back at ``offset`` (a block boundary), each preceded by ``header(i, payload)``
        (``payload``: record ``i``'s bytes, as one staged view or as its own buffers), zero-padded to a whole block,
        and make them durable; returns the number of bytes written, padding included."""
        if offset % BLOCK:
            raise ValueError(f"offset {offset} is not a multiple of {BLOCK}")
        if self._staging is None:
            self._staging = mmap.mmap(-1, self._staging_bytes)
        staging = memoryview(self._staging)
        batch = _Batch(fd, staging, offset)
        for index, parts in enumerate(records):
            length = sum(memoryview(part).nbytes for part in parts)
            if batch.room() >= header.size + length:
                start = batch.filled + header.size
                batch.filled = start
                for part in parts:
                    batch.add(part)
                staging[start - header.size : start] = header(index, (staging[start : batch.filled],))
            else:
                batch.add(header(index, parts))
                for part in parts:
                    batch.add(part)
        return batch.finish()

    def close(self) -> None:
        if self._staging is not None:
            with contextlib.suppress(BufferError):  # a failed write's traceback still holds a view: freed with it
                self._staging.close()
            self._staging = None


class Header(Protocol):
    """How a record's header (``size`` bytes) is made from its index in the batch and its payload."""

    size: int

    def __call__(self, index: int, payload: Sequence[Buffer]) -> bytes: ...


class _Batch:
    """One ``BlockWriter.write``: staged bytes not written yet, and how much was written before them."""

    def __init__(self, fd: int, staging: memoryview, offset: int) -> None:
        self.fd = fd
        self.staging = staging
        self.offset = offset
        self.filled = 0
        self.written = 0

    def room(self) -> int:
        return self.staging.nbytes - self.filled

    def add(self, buffer: Buffer) -> None:
        view = memoryview(buffer).cast("B")
        staging, capacity = self.staging, self.staging.nbytes
        while view.nbytes:
            if self.filled == capacity:  # written when more must be staged, so a record that fits stays staged
                _pwrite_all(self.fd, staging, self.offset + self.written)
                self.written += capacity
                self.filled = 0
            take = min(view.nbytes, capacity - self.filled)
            staging[self.filled : self.filled + take] = view[:take]
            self.filled += take
            view = view[take:]

    def finish(self) -> int:
        """Pad and write what is staged, and make the whole batch durable."""
        end = align_up(self.filled)
        self.staging[self.filled : end] = _ZEROS[: end - self.filled]
        durable_write(self.fd, self.staging[:end], self.offset + self.written, after_writes=self.written > 0)
        return self.written + end


def durable_write(fd: int, data: memoryview, offset: int, *, after_writes: bool = False) -> None:
    """Write ``data`` at ``offset`` and make it durable as ``fdatasync`` would: with ``RWF_DSYNC``, one system call;
    ``after_writes`` (earlier plain writes must become durable too, which ``RWF_DSYNC`` does not promise): a write,
    then ``fdatasync``. Every Tier-1 sync of the file log goes through here."""
    global _dsync
    if _dsync and not after_writes:
        try:
            written = os.pwritev(fd, [data], offset, _RWF_DSYNC)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _dsync = False  # a kernel before 4.7: write, then sync
        else:
            if written < data.nbytes:
                _pwrite_all(fd, data[written:], offset + written)
                os.fdatasync(fd)
            return
    _pwrite_all(fd, data, offset)
    os.fdatasync(fd)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < data.nbytes:
        done += os.pwrite(fd, data[done:], offset + done)
