"""ReadIndex bookkeeping: memory and unflushed byte counters stay exact through add, flush, move, drop."""

from __future__ import annotations

from anabranch.segmentstore.read_index import ReadIndex


def test_counters_through_flush_move_and_drop() -> None:
    index = ReadIndex()
    index.add(1, 0, b"aaaa", 1)
    index.add(1, 4, b"bbbb", 2)
    index.add(2, 0, b"cccccc", 3)
    assert (index.memory_bytes, index.unflushed_bytes) == (14, 14)
    index.mark_flushed(1, 6)
    assert index.unflushed_bytes == 8
    assert index.segments[1].first_unflushed_seq() == 2
    index.mark_flushed(2, 3)
    index.move(2, 1, 8, 0)
    assert (index.memory_bytes, index.unflushed_bytes) == (11, 5)
    assert b"".join(bytes(p) for p in index.gather(1, 0, 100)) == b"aaaabbbb"
    assert b"".join(bytes(p) for p in index.gather(1, 11, 100)) == b"ccc"
    assert index.gather(1, 9, 100) == []
    assert index.drop_flushed(1) == 4
    assert (index.memory_bytes, index.unflushed_bytes) == (7, 5)
    index.mark_flushed(1, 14)
    assert index.unflushed_bytes == 0 and index.segments[1].first_unflushed_seq() is None
    index.remove(1)
    assert (index.memory_bytes, index.unflushed_bytes) == (0, 0)


def test_add_below_flushed_point_keeps_only_new_bytes() -> None:
    index = ReadIndex()
    index.add(5, 0, b"abcdef", 9, flushed_to=3)
    assert (index.memory_bytes, index.unflushed_bytes) == (3, 3)
    assert bytes(index.gather(5, 3, 6)[0]) == b"def"
