"""The segment store's hot paths do not copy data (issue 15): read replies are views of the read index until the
transport joins the frame, and an append block keeps a view of the received bytes unless it is a small part of
them (then it is copied, so it cannot pin a large receive buffer the read index does not account for)."""

from __future__ import annotations

from anabranch.protocol.codec import decode, encode_segment_read
from anabranch.protocol.commands import SegmentRead
from anabranch.protocol.framing import FrameDecoder
from anabranch.segmentstore.container import _kept
from anabranch.segmentstore.store import SegmentStore

SEG = "scope/stream/0.#epoch.0"


async def test_a_read_across_appends_returns_views_of_the_read_index(store: SegmentStore) -> None:
    await store.create_segment(SEG)
    blocks = [bytes([i]) * (1000 + i) for i in range(5)]
    for block in blocks:
        await store.append(SEG, block)
    result = await store.read(SEG, 500, 1 << 20)
    assert len(result.pieces) == 5
    assert result.pieces[1] is blocks[1]  # whole entries are the appended objects themselves
    assert isinstance(result.pieces[0], memoryview) and result.pieces[0].obj is blocks[0]
    assert result.size == sum(map(len, blocks)) - 500
    assert bytes(result.data) == b"".join(blocks)[500:]
    assert result.at_tail and not result.end_of_segment


def test_a_segment_read_frame_from_pieces_decodes_to_the_joined_data() -> None:
    pieces = [b"abc", memoryview(b"-defgh-")[1:6], b"", b"ij"]
    parts = encode_segment_read(SEG, 42, True, False, pieces, 10, 7)
    assert any(part is pieces[0] for part in parts) and any(part is pieces[1] for part in parts)
    ((type_code, payload),) = FrameDecoder().feed(b"".join(parts))
    assert decode(type_code, payload) == SegmentRead(SEG, 42, True, False, b"abcdefghij", 7)


def test_append_data_is_kept_as_a_view_unless_it_is_a_small_part_of_the_received_bytes() -> None:
    received = bytes(range(256)) * 64
    block = memoryview(received)[100:100 + len(received) // 4]
    kept = _kept(block)
    assert isinstance(kept, memoryview) and kept.obj is received
    small = memoryview(received)[:100]
    copied = _kept(small)
    assert isinstance(copied, bytes) and copied == received[:100]
    assert _kept(received) is received
