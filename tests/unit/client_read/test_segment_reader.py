"""SegmentReader against an in-memory store: framing per block, tail waits, seal, truncation, WrongHost."""

from __future__ import annotations

import asyncio

import pytest
from client_read_fakes import FakeStore, events, router

from anabranch.client.segment_reader import SegmentReader, split_events
from anabranch.errors import DataCorruptionError

SEG = "sc/st/0.#epoch.0"


def test_split_events_keeps_partial_tail() -> None:
    data = events(b"abc", b"", b"defgh") + events(b"partial")[:10]
    found, offsets, used = split_events(data, 100)
    assert [bytes(e) for e in found] == [b"abc", b"", b"defgh"]
    assert offsets == [100, 111, 119]
    assert used == 32


def test_split_events_rejects_garbage() -> None:
    with pytest.raises(DataCorruptionError):
        split_events(b"\x00\x00\x00\x07\x00\x00\x00\x01x", 0)


def _split_one_by_one(data: bytes, base: int) -> tuple[list[bytes], list[int], int]:
    found, offsets, pos = [], [], 0
    while len(data) - pos >= 8 and len(data) - pos - 8 >= (length := int.from_bytes(data[pos + 4:pos + 8], "big")):
        found.append(data[pos + 8:pos + 8 + length])
        offsets.append(base + pos)
        pos += 8 + length
    return found, offsets, pos


@pytest.mark.parametrize("payloads", [
    [b"x" * 10] * 40,  # equal sizes: split in bulk
    [b"y" * 10] * 40 + [b"z" * 3] + [b"y" * 10] * 5,  # one differs after the first run
    [b"%02d" % i for i in range(30)] + [b"longer one"],
    [b""] * 20,
    [b"a" * 7] * 15,  # fewer events than the bulk path wants
])
@pytest.mark.parametrize("tail", [b"", b"\x00\x00", events(b"cut short")[:12]])
def test_split_events_in_bulk_matches_one_by_one(payloads: list[bytes], tail: bytes) -> None:
    data = events(*payloads) + tail
    found, offsets, used = split_events(data, 5000)
    assert (found, offsets, used) == _split_one_by_one(data, 5000)
    assert found == payloads and all(type(e) is bytes for e in found)


def test_split_events_in_bulk_still_checks_every_header() -> None:
    data = bytearray(events(*[b"q" * 12] * 40))
    data[20 * 20] = 1  # the type byte of event 20 (20 bytes per framed event)
    with pytest.raises(DataCorruptionError, match=r"offset 400 is not an event header \(type 16777216"):
        split_events(bytes(data), 0)


async def read_all(reader: SegmentReader) -> list[bytes]:
    out: list[bytes] = []
    while not reader.at_end:
        block = await asyncio.wait_for(reader.read_block(), 5)
        out += [bytes(e) for e in block.events]
    return out


async def test_reads_across_small_blocks_until_sealed() -> None:
    store = FakeStore()
    payloads = [bytes([i]) * i for i in range(40)]
    store.create(SEG, events(*payloads))
    store.seal(SEG)
    reader = SegmentReader(router(store), SEG, 0, prefetch=7)
    assert await read_all(reader) == payloads
    assert reader.offset == len(store.data[SEG])


async def test_tail_wait_returns_new_data_and_timeout_returns_empty() -> None:
    store = FakeStore()
    store.create(SEG)
    reader = SegmentReader(router(store), SEG, 0)
    empty = await reader.read_block(timeout=0.05)
    assert empty.events == [] and not empty.at_end_of_segment
    store.append(SEG, events(b"late"))
    block = await asyncio.wait_for(reader.read_block(), 5)
    assert [bytes(e) for e in block.events] == [b"late"]
    store.seal(SEG)
    assert (await asyncio.wait_for(reader.read_block(), 5)).at_end_of_segment
    await reader.close()


async def test_end_offset_stops_reading() -> None:
    store = FakeStore()
    store.create(SEG, events(b"a", b"b", b"c"))
    reader = SegmentReader(router(store), SEG, 0, end_offset=18)
    assert await read_all(reader) == [b"a", b"b"]


async def test_truncated_segment_skips_to_head() -> None:
    store = FakeStore()
    store.create(SEG, events(b"old", b"new"))
    store.truncate(SEG, 11)
    store.seal(SEG)
    reader = SegmentReader(router(store), SEG, 0)
    assert await read_all(reader) == [b"new"]
    assert reader.truncated_bytes == 11


async def test_missing_segment_counts_as_ended_and_wrong_host_is_retried() -> None:
    store = FakeStore()
    store.wrong_host_once.add("sc/st/9.#epoch.0")
    reader = SegmentReader(router(store), "sc/st/9.#epoch.0", 0)
    assert await read_all(reader) == []
    assert sum(1 for r in store.requests if type(r).__name__ == "ReadSegment") == 2
