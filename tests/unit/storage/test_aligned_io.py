"""BlockWriter: records staged and written in whole blocks, headers computed over the staged copy when the record fits,
one durable write (RWF_DSYNC) for a batch that fits the staging buffer, writes plus one fdatasync for one that
does not, and the fallback for kernels without RWF_DSYNC."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from anabranch.storage import aligned_io
from anabranch.storage.aligned_io import BLOCK, BlockWriter, align_up, open_for_writing
from anabranch.storage.interfaces import Buffer

STAGING = 4 * BLOCK


class IndexAndCrc:
    """A test header: the record's index and the crc32 of its payload; remembers how each payload was handed over."""

    size = 8

    def __init__(self) -> None:
        self.payload_pieces: list[int] = []

    def __call__(self, index: int, payload: Sequence[Buffer]) -> bytes:
        self.payload_pieces.append(len(payload))
        crc = 0
        for piece in payload:
            crc = zlib.crc32(piece, crc)
        return struct.pack("<II", index, crc)


def read_back(path: Path, offset: int, sizes: list[int]) -> list[bytes]:
    data = path.read_bytes()[offset:]
    payloads, position = [], 0
    for index, size in enumerate(sizes):
        got_index, crc = struct.unpack_from("<II", data, position)
        payload = data[position + 8 : position + 8 + size]
        assert (got_index, crc) == (index, zlib.crc32(payload))
        payloads.append(payload)
        position += 8 + size
    assert data[position : align_up(position)] == bytes(align_up(position) - position)  # zero padding
    return payloads


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Every durable_write call's ``after_writes``."""
    calls: list[bool] = []
    real = aligned_io.durable_write

    def counting(fd: int, data: memoryview, offset: int, *, after_writes: bool = False) -> None:
        calls.append(after_writes)
        real(fd, data, offset, after_writes=after_writes)

    monkeypatch.setattr(aligned_io, "durable_write", counting)
    yield calls


def records_of(sizes: list[list[int]]) -> list[list[bytes]]:
    return [[os.urandom(size) for size in parts] for parts in sizes]


def write(tmp_path: Path, records: list[list[bytes]], offset: int = 0) -> tuple[int, IndexAndCrc]:
    path = tmp_path / "log"
    path.touch()
    fd = open_for_writing(path)
    writer = BlockWriter(STAGING)
    header = IndexAndCrc()
    try:
        return writer.write(fd, records, offset, header), header
    finally:
        writer.close()
        os.close(fd)


def test_a_batch_that_fits_is_one_durable_write_with_headers_over_the_staged_copy(tmp_path: Path,
                                                                                syncs: list[bool]) -> None:
    records = records_of([[100, 2000, 3], [5000], [1]])
    written, header = write(tmp_path, records)
    sizes = [sum(map(len, parts)) for parts in records]
    assert written == align_up(sum(sizes) + 3 * 8)
    assert read_back(tmp_path / "log", 0, sizes) == [b"".join(parts) for parts in records]
    assert header.payload_pieces == [1, 1, 1]  # each crc over one contiguous staged view
    assert syncs == [False]


def test_a_batch_larger_than_the_staging_buffer_is_written_then_synced_once(tmp_path: Path,
                                                                           syncs: list[bool]) -> None:
    records = records_of([[9000], [3 * BLOCK, 7000], [100], [STAGING + 10]])
    written, header = write(tmp_path, records)
    sizes = [sum(map(len, parts)) for parts in records]
    assert written == align_up(sum(sizes) + 4 * 8)
    assert read_back(tmp_path / "log", 0, sizes) == [b"".join(parts) for parts in records]
    assert header.payload_pieces == [1, 2, 1, 1]  # the second record did not fit what was left: over its parts
    assert syncs == [True]


def test_a_record_that_exactly_fills_the_staging_buffer(tmp_path: Path, syncs: list[bool]) -> None:
    records = records_of([[STAGING - 8], [50]])
    written, header = write(tmp_path, records, offset=BLOCK)
    assert written == STAGING + BLOCK
    assert read_back(tmp_path / "log", BLOCK, [STAGING - 8, 50]) == [parts[0] for parts in records]
    assert header.payload_pieces == [1, 1]
    assert syncs == [True]


def test_unaligned_offsets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 4096"):
        write(tmp_path, records_of([[10]]), offset=100)


def test_without_rwf_dsync_the_write_is_followed_by_fdatasync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused: list[int] = []
    synced: list[int] = []
    real_fdatasync = os.fdatasync

    def old_kernel_pwritev(fd: int, buffers: Any, offset: int, flags: int = 0) -> int:
        refused.append(flags)
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    def counting_fdatasync(fd: int) -> None:
        synced.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "pwritev", old_kernel_pwritev)
    monkeypatch.setattr(os, "fdatasync", counting_fdatasync)
    monkeypatch.setattr(aligned_io, "_dsync", True)
    records = records_of([[300], [40]])
    write(tmp_path, records)
    write(tmp_path, records)
    assert len(refused) == 1 and len(synced) == 2  # tried once, then write + fdatasync every time
    assert aligned_io._dsync is False
    assert read_back(tmp_path / "log", 0, [300, 40]) == [parts[0] for parts in records]
