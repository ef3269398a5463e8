"""The client's append rules alone (``protocol/client_appends.py``): blocks, numbering, acks, resends."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anabranch.protocol import commands as wire
from anabranch.protocol.client_appends import (
    NO_EVENT,
    AppendStateError,
    ClientAppends,
    OutgoingBlock,
    ReplyOutcome,
    event_header,
    reply_outcome,
)
from anabranch.protocol.codec import encode
from anabranch.protocol.server_connection import Append, ServerConnection

WRITER = uuid.UUID(int=7)
SEGMENT = "scope/stream/0.#epoch.0"


class Machine:
    """A ClientAppends with recording hooks; each block's handle is its serial number."""

    def __init__(self, *, max_bytes: int = 1 << 20, max_events: int = 500, max_event: int = 1 << 16,
                 inflight: int = 4) -> None:
        self.opened: list[bool] = []
        self.ready_calls = 0
        self.appends: ClientAppends[int] = ClientAppends(
            WRITER, 11, open_block=self._open, block_ready=self._ready, max_block_bytes=max_bytes,
            max_block_events=max_events, max_event_size=max_event, max_inflight_blocks=inflight)

    def _open(self, large: bool) -> int:
        self.opened.append(large)
        return len(self.opened)

    def _ready(self) -> None:
        self.ready_calls += 1

    def send_all(self) -> list[OutgoingBlock[int]]:
        sent = []
        while (block := self.appends.next_to_send()) is not None:
            sent.append(block)
        return sent


def events_of(blocks: list[OutgoingBlock[int]]) -> list[bytes]:
    return [p for b in blocks for p in b.payloads()]


def test_events_fill_blocks_by_count_and_bytes() -> None:
    m = Machine(max_bytes=100, max_events=3)
    handles = [m.appends.add(bytes([i]) * 10, None) for i in range(7)]  # 18 bytes framed each
    assert handles == [1, 1, 1, 2, 2, 2, 3]  # 3 events per block by count
    m2 = Machine(max_bytes=40, max_events=100)
    assert [m2.appends.add(b"x" * 10, None) for _ in range(5)] == [1, 1, 2, 2, 3]  # 2 x 18 bytes ≤ 40 < 3 x 18
    assert m2.appends.ready_blocks == 2 and m2.ready_calls == 2


def test_blocks_are_numbered_when_they_close_and_frame_their_events() -> None:
    m = Machine(max_events=2)
    for i in range(5):
        m.appends.add(f"e{i}".encode(), f"k{i}")
    assert m.appends.next_event == 5  # the open block (event 5) has no number yet
    m.appends.close_open()
    blocks = m.send_all()
    assert [(b.first_event, b.last_event, b.count) for b in blocks] == [(1, 2, 2), (3, 4, 2), (5, 5, 1)]
    assert blocks[0].keys == ["k0", "k1"]
    assert b"".join(blocks[1].parts) == struct.pack(">ii", 0, 2) + b"e2" + struct.pack(">ii", 0, 2) + b"e3"


def test_frames_decode_on_the_server_as_one_append_per_block() -> None:
    m = Machine(max_events=3)
    for i in range(3):
        m.appends.add(f"event-{i}".encode(), None)
    server = ServerConnection()
    assert isinstance(server.receive_data(encode(wire.SetupAppend(11, WRITER, SEGMENT, "")))[0], wire.SetupAppend)
    (block,) = m.send_all()
    items = server.receive_data(b"".join(bytes(f) for f in m.appends.frames(block)))
    assert len(items) == 1 and isinstance(items[0], Append)
    append = items[0]
    assert (append.writer_id, append.segment, append.event_number, append.event_count, append.request_id) == (
        WRITER, SEGMENT, 3, 3, 11)
    assert bytes(append.data) == b"".join(block.parts)


def test_in_flight_window_and_large_blocks_wait_for_an_empty_window() -> None:
    m = Machine(max_events=1, inflight=2, max_event=16)
    m.appends.add(b"a", None)
    m.appends.add(b"b", None)
    m.appends.add(b"c", None)
    assert len(m.send_all()) == 2 and m.appends.ready_blocks == 1
    m.appends.acknowledge(1)
    assert len(m.send_all()) == 1
    assert m.appends.add(b"L" * 17, None) == 4 and m.opened[-1] is True
    assert m.send_all() == []  # blocks 2 and 3 are still in flight
    m.appends.acknowledge(3)
    assert m.appends.next_to_send(large=False) is None  # a sender that cannot write large blocks leaves it
    (large,) = m.send_all()
    assert large.large and large.first_event == large.last_event == 4
    m.appends.add(b"d", None)
    assert m.send_all() == []  # nothing passes a large block in flight
    assert m.appends.next_to_send(large=False) is None
    m.appends.large_written(large)
    assert [b.last_event for b in m.send_all()] == [5]


def test_data_appended_completes_every_block_up_to_its_number() -> None:
    m = Machine(max_events=2)
    for i in range(6):
        m.appends.add(bytes([i]), None)
    m.send_all()
    assert m.appends.acknowledge(0) == []
    assert [b.handle for b in m.appends.acknowledge(4)] == [1, 2]
    assert [b.handle for b in m.appends.acknowledge(5)] == []  # inside the block: not complete
    assert [b.handle for b in m.appends.acknowledge(6)] == [3]
    assert not m.appends.pending


def test_setup_drops_what_the_server_has_and_resends_the_rest_in_order() -> None:
    m = Machine(max_events=2, inflight=2)
    for i in range(8):
        m.appends.add(bytes([i]), None)
    assert [b.last_event for b in m.send_all()] == [2, 4]
    assert [b.handle for b in m.appends.setup(2)] == [1]
    assert [b.last_event for b in m.send_all()] == [4, 6]
    assert m.appends.setup(NO_EVENT) == []  # a server that has nothing yet: everything again
    assert [b.last_event for b in m.send_all()] == [4, 6]
    assert [b.handle for b in m.appends.setup(6)] == [2, 3]  # block 8 was never sent: it stays ready
    assert [b.last_event for b in m.send_all()] == [8]


def test_setup_numbers_the_server_cannot_have_are_refused() -> None:
    m = Machine(max_events=2)
    for i in range(4):
        m.appends.add(bytes([i]), None)
    m.send_all()
    with pytest.raises(AppendStateError, match="only numbered events up to 4"):
        m.appends.setup(5)
    with pytest.raises(AppendStateError, match="blocks are atomic"):
        m.appends.setup(3)
    assert not AppendStateError("x").retriable


def test_take_unacked_numbers_the_open_block_and_discard_does_not() -> None:
    m = Machine(max_events=2)
    for i in range(5):
        m.appends.add(bytes([i]), None)
    m.send_all()
    taken = m.appends.take_unacked()
    assert [b.last_event for b in taken] == [2, 4, 5] and not m.appends.pending
    m.appends.add(b"x", None)
    m.appends.add(b"y", None)
    m.appends.add(b"z", None)
    dropped = m.appends.discard()
    assert [b.count for b in dropped] == [2, 1] and dropped[-1].last_event == 0
    assert m.appends.next_event == 8  # numbers handed out are never reused; the discarded open block had none


def test_add_many_fills_blocks_like_add_and_returns_each_block_once() -> None:
    one, many = Machine(max_bytes=60, max_events=3), Machine(max_bytes=60, max_events=3)
    payloads = [bytes([i]) * (1 + i % 9) for i in range(20)]
    singles = [one.appends.add(p, "k") for p in payloads]
    assert many.appends.add_many(payloads, "k") == sorted(set(singles))
    one.appends.close_open()
    many.appends.close_open()
    assert [(b.parts, b.keys, b.size, b.first_event) for b in one.send_all()] == \
        [(b.parts, b.keys, b.size, b.first_event) for b in many.send_all()]
    large = Machine(max_event=16)
    assert large.appends.add_many([b"a", b"L" * 17, b"b"], None) == [1, 2, 3] and large.opened == [False, True, False]
    assert large.appends.add_many([], None) == []


def test_open_block_goes_out_while_the_window_has_room_and_fills_while_it_is_full() -> None:
    m = Machine(inflight=2)
    assert m.appends.idle and m.appends.has_room and not m.appends.close_open_if_room()  # nothing open
    m.appends.add(b"a", None)
    assert m.appends.idle and m.appends.open_events == 1
    assert m.appends.close_open_if_room() and not m.appends.idle and m.appends.has_room
    m.appends.add(b"b", None)
    assert m.appends.close_open_if_room() and not m.appends.has_room  # two blocks unacked: the window is full
    (first, _) = m.send_all()
    m.appends.add(b"c", None)
    m.appends.add(b"d", None)
    assert not m.appends.close_open_if_room() and m.appends.open_events == 2  # fills while the window is full
    m.appends.acknowledge(first.last_event)
    assert m.appends.close_open_if_room()  # an ack made room: send what accumulated
    assert [b.count for b in m.send_all()] == [2]


def test_event_headers_are_shared_and_right() -> None:
    assert event_header(5) is event_header(5) and event_header(5) == struct.pack(">ii", 0, 5)
    assert event_header(1 << 20) == struct.pack(">ii", 0, 1 << 20)


def test_open_block_hook_may_refuse_an_event() -> None:
    def refuse(large: bool) -> int:
        raise RuntimeError("writer failed")

    appends: ClientAppends[int] = ClientAppends(WRITER, 1, open_block=refuse, block_ready=lambda: None,
                                                max_block_bytes=100, max_block_events=10, max_event_size=50,
                                                max_inflight_blocks=1)
    with pytest.raises(RuntimeError):
        appends.add(b"x", None)
    assert not appends.pending and appends.next_event == 1


@pytest.mark.parametrize(("reply", "outcome"), [
    (wire.DataAppended(WRITER, 3, 0, 1, 100), ReplyOutcome.ACKNOWLEDGED),
    (wire.SegmentIsSealed(1, SEGMENT, "", 3), ReplyOutcome.SEALED),
    (wire.NoSuchSegment(1, SEGMENT, "", -1), ReplyOutcome.SEALED),
    (wire.WrongHost(1, SEGMENT, "", ""), ReplyOutcome.RECONNECT),
    (wire.InvalidEventNumber(WRITER, 1, "", 3), ReplyOutcome.RECONNECT),
    (wire.AuthTokenCheckFailed(1, "", 0), ReplyOutcome.RECONNECT),
    (wire.ConditionalCheckFailed(WRITER, 3, 1), ReplyOutcome.CONDITIONAL_CHECK_FAILED),
    (wire.ErrorMessage(1, SEGMENT, "out of space", wire.ErrorMessage.UNSPECIFIED), ReplyOutcome.FAILED),
    (wire.SegmentIsTruncated(1, SEGMENT, 0, "", 0), ReplyOutcome.IGNORED),
    (wire.KeepAlive(), ReplyOutcome.IGNORED),
])
def test_reply_outcomes(reply: wire.Reply, outcome: ReplyOutcome) -> None:
    assert reply_outcome(reply) is outcome


# ---- any interleaving of acks and reconnects ----

step = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 40)),  # an event of about this many bytes
    st.tuples(st.just("close"), st.just(0)),  # the linger timer fires
    st.tuples(st.just("room"), st.just(0)),  # adaptive batching: the sender runs, or an ack arrives
    st.tuples(st.just("many"), st.integers(0, 6)),  # write_events: this many events with one key
    st.tuples(st.just("send"), st.just(0)),
    st.tuples(st.just("ack"), st.integers(1, 4)),  # the server stores and acks the next k blocks in flight
)


@settings(max_examples=300, deadline=None)
@given(rounds=st.lists(st.tuples(st.lists(step, max_size=40), st.integers(0, 10)), min_size=1, max_size=4),
       max_events=st.integers(1, 5), inflight=st.integers(1, 4))
def test_reconnects_resend_exactly_the_unacknowledged_events_in_order(
        rounds: list[tuple[list[tuple[str, int]], int]], max_events: int, inflight: int) -> None:
    """Each round: events, sends and acks interleave, then the connection drops after any number of the
    blocks in flight reached the segment, and AppendSetup reports the segment's last event number."""
    m = Machine(max_bytes=120, max_events=max_events, inflight=inflight, max_event=1000)
    written: list[bytes] = []
    acked: list[bytes] = []
    segment: list[bytes] = []  # what the segment holds, in order (a block is stored whole or not at all)
    segment_last = NO_EVENT
    sent: list[bytes] = []
    for ops, reached in rounds:
        in_flight: list[OutgoingBlock[int]] = []
        for op, n in ops:
            if op == "add":
                payload = len(written).to_bytes(4, "big") * (n // 4 + 1)
                written.append(payload)
                m.appends.add(payload, None)
            elif op == "many":
                batch = [len(written).to_bytes(4, "big") + bytes([i]) * i for i in range(n)]
                written.extend(batch)
                m.appends.add_many(batch, "k")
            elif op == "close":
                m.appends.close_open()
            elif op == "room":
                m.appends.close_open_if_room()
            elif op == "send":
                blocks = m.send_all()
                sent.extend(events_of(blocks))
                in_flight.extend(blocks)
            elif in_flight:
                durable, in_flight = in_flight[:n], in_flight[n:]
                segment.extend(events_of(durable))
                segment_last = durable[-1].last_event
                assert m.appends.acknowledge(segment_last) == durable
                acked.extend(events_of(durable))
        stored, lost = in_flight[:reached], in_flight[reached:]  # acks of these never arrive
        segment.extend(events_of(stored))
        if stored:
            segment_last = stored[-1].last_event
        unacked = [p for b in [*stored, *lost] for p in b.payloads()]
        done = m.appends.setup(segment_last)
        assert done == stored  # AppendSetup acknowledges exactly what reached the segment
        acked.extend(events_of(done))
        assert acked == segment
        assert unacked[len(events_of(stored)):] == events_of(lost)
    m.appends.close_open()
    while m.appends.pending:  # a good connection at last: everything left goes through
        for block in m.send_all():
            sent.extend(block.payloads())
            segment.extend(block.payloads())
            acked.extend(events_of(m.appends.acknowledge(block.last_event)))
    assert segment == written  # every event stored exactly once, in order
    assert acked == written
    assert set(sent) == set(written)


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(1, 4), min_size=1, max_size=8), acked_blocks=st.integers(0, 8),
       number=st.integers(-5, 40))
def test_setup_accepts_block_boundaries_only(counts: list[int], acked_blocks: int, number: int) -> None:
    """Any last_event_number: a block boundary (or one below what was acked) resyncs; anything else is refused."""
    m = Machine(max_events=1000, inflight=100)
    for count in counts:
        for _ in range(count):
            m.appends.add(b"e", None)
        m.appends.close_open()
    blocks = m.send_all()
    acked = min(acked_blocks, len(blocks))
    if acked:
        m.appends.acknowledge(blocks[acked - 1].last_event)
    boundaries = {0} | {b.last_event for b in blocks}
    total = blocks[-1].last_event
    if number > total or (number not in boundaries and number > (blocks[acked - 1].last_event if acked else 0)):
        with pytest.raises(AppendStateError):
            m.appends.setup(number)
        return
    done = m.appends.setup(number)
    assert [b.last_event for b in done] == [b.last_event for b in blocks[acked:] if b.last_event <= number]
    assert [b.first_event for b in m.send_all()] == [b.first_event for b in blocks[acked:] if b.last_event > number]
