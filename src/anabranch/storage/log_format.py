"""On-disk format of the file Tier-1 log: record framing, file names, and scanning a log file.

A log file ``<first sequence, 20 digits>.log`` holds consecutive records, each
``magic "ABL1" | payload length u32 | sequence u64 | crc32 u32 | payload`` (little endian), where the
crc32 covers the first 16 header bytes and the payload. Sequences inside a file are consecutive,
starting at the file's first sequence. The log writes each batch of records on a 4 KiB boundary and pads it with
zeros to the next one (``aligned_io``), so zeros from a record's end up to a boundary are padding, not a bad record;
files written before padding existed have none, and read the same. Pure functions over bytes and file descriptors;
no policy about what a bad record means (the log decides).

The crc32 is zlib's (same polynomial and values), computed with ISA-L (``isal``): several times faster than
the system zlib, and every byte a writer appends goes through it once on the Tier-1 thread.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from isal.isal_zlib import crc32

from anabranch.storage.aligned_io import BLOCK, align_up
from anabranch.storage.interfaces import Buffer

MAGIC = b"ABL1"
HEADER = struct.Struct("<4sIQI")
_PREFIX = struct.Struct("<4sIQ")
_FILE_NAME = re.compile(r"(\d{20})\.log")
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


def file_name(first_sequence: int) -> str:
    return f"{first_sequence:020d}.log"


def parse_file_name(name: str) -> int | None:
    """The first sequence a log file name carries, or None if it is not a log file name."""
    match = _FILE_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def frame_header(sequence: int, buffers: Sequence[Buffer]) -> bytes:
    """The header for a record made of ``buffers`` (computes the crc over them; no copy of the payload)."""
    length = sum(memoryview(b).nbytes for b in buffers)
    prefix = _PREFIX.pack(MAGIC, length, sequence)
    crc = crc32(prefix)
    for buffer in buffers:
        crc = crc32(buffer, crc)
    return prefix + struct.pack("<I", crc)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What a scan of one file found: the valid prefix and its records."""

    good_size: int
    last_sequence: int
    clean: bool


def _open_map(path: Path, size: int) -> mmap.mmap | None:
    if size == 0:
        return None
    with path.open("rb") as file:
        return mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)


def scan_file(path: Path, first_sequence: int) -> ScanResult:
    """Verify every record from the start; stop at the first bad one (``clean`` is False then)."""
    size = path.stat().st_size
    mapped = _open_map(path, size)
    position, expected = 0, first_sequence
    if mapped is None:
        return ScanResult(0, first_sequence - 1, True)
    with mapped, memoryview(mapped) as view:
        while position < size:
            if view[position : position + 4] != MAGIC:
                after = _after_padding(view, position, size)
                if after is None:
                    break
                position = after
                continue
            if size - position < HEADER.size:
                break
            _, length, sequence, crc = HEADER.unpack_from(view, position)
            end = position + HEADER.size + length
            if sequence != expected or end > size:
                break
            payload_crc = crc32(view[position + HEADER.size : end], crc32(view[position : position + 16]))
            if payload_crc != crc:
                break
            position, expected = end, expected + 1
    return ScanResult(position, expected - 1, position == size)


def _after_padding(view: memoryview, position: int, size: int) -> int | None:
    """Where the zero padding that starts at ``position`` ends (the next block boundary, or the end of the file);
    None if there is none there: ``position`` is a boundary, or a byte before the boundary is not zero."""
    if position % BLOCK == 0:
        return None
    end = min(align_up(position), size)
    return end if view[position:end] == bytes(end - position) else None


def read_records(path: Path, size: int, after: int) -> Iterator[tuple[int, bytes]]:
    """Yield (sequence, payload) of the already verified first ``size`` bytes of a file, for sequence > after."""
    mapped = _open_map(path, size)
    if mapped is None:
        return
    with mapped:
        position = 0
        while position < size:
            if mapped[position : position + 4] != MAGIC:
                position = align_up(position + 1)
                continue
            _, length, sequence, _ = HEADER.unpack_from(mapped, position)
            start = position + HEADER.size
            position = start + length
            if sequence > after:
                yield sequence, mapped[start:position]


def writev_all(fd: int, buffers: list[Buffer]) -> int:
    """Write every buffer with as few ``os.writev`` calls as possible (IOV_MAX groups, partial writes resumed)."""
    total = 0
    pending = [memoryview(b).cast("B") for b in buffers if memoryview(b).nbytes]
    while pending:
        group = pending[:_IOV_MAX]
        written = os.writev(fd, group)
        total += written
        expected = sum(v.nbytes for v in group)
        if written == expected:
            pending = pending[len(group) :]
            continue
        index = 0
        while written >= group[index].nbytes:
            written -= group[index].nbytes
            index += 1
        pending = [group[index][written:], *pending[index + 1 :]]
    return total


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
