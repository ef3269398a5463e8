"""The LTS metadata snapshot is written and read a segment at a time, and snapshots of older versions still load."""

from __future__ import annotations

import cbor2
import pytest

from anabranch.errors import DataCorruptionError
from anabranch.storage.segment_metadata import ChunkRef, SegmentState, decode_snapshot, encode_snapshot


def segments() -> dict[str, SegmentState]:
    return {
        "empty": SegmentState(),
        "sealed": SegmentState(30, 10, True, (ChunkRef("c1", 0, 20), ChunkRef("c2", 20, 10))),
        "packed": SegmentState(7, 0, False, (ChunkRef("pack", 0, 7, 120),)),
    }


def test_a_snapshot_round_trips_as_an_indefinite_length_map() -> None:
    data = encode_snapshot(segments())
    assert data[:1] == b"\xbf" and data[-1:] == b"\xff"
    assert decode_snapshot(data) == segments()
    assert cbor2.loads(data).keys() == segments().keys()  # still plain CBOR to any reader


def test_a_snapshot_written_as_a_definite_length_map_loads_too() -> None:
    older = cbor2.dumps({name: [s.length, s.start_offset, s.sealed, [c.encode() for c in s.chunks]]
                         for name, s in segments().items()})
    assert decode_snapshot(older) == segments()


@pytest.mark.parametrize("damage", [lambda d: d[:-1], lambda d: d[:-6], lambda d: d + b"\x00",
                                    lambda d: b"\xbf\x61a\xff"])
def test_a_damaged_snapshot_is_data_corruption(damage: object) -> None:
    with pytest.raises(DataCorruptionError):
        decode_snapshot(damage(bytes(encode_snapshot(segments()))))  # type: ignore[operator]
