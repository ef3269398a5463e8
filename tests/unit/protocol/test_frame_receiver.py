"""FrameReceiver: frames received straight into its buffers split exactly as FrameDecoder splits them, large
frames land in buffers of their own, and nothing handed out is ever overwritten (issue 15: no copies)."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anabranch.errors import ProtocolError
from anabranch.protocol.codec import encode
from anabranch.protocol.commands import AppendBlockEnd, Hello, ReadSegment, SetupAppend
from anabranch.protocol.framing import SCRATCH_SIZE, BadFrameError, FrameDecoder, FrameReceiver
from anabranch.protocol.server_connection import Append, ServerConnection

WRITER = uuid.UUID(int=0x1234)
OTHER = uuid.UUID(int=0x5678)
SEGMENT = "sc/st/0.#epoch.0"


def frame(type_code: int, payload: bytes) -> bytes:
    return struct.pack(">ii", type_code, len(payload)) + payload


def receive(receiver: FrameReceiver, stream: bytes, chunks: list[int]) -> list[tuple[int, memoryview]]:
    """Feed ``stream`` as a socket would: each receive fills at most the given buffer and the next chunk size."""
    frames: list[tuple[int, memoryview]] = []
    pos, sizes = 0, iter(chunks)
    while pos < len(stream):
        buffer = receiver.get_buffer()
        assert len(buffer) > 0
        count = min(len(buffer), len(stream) - pos, next(sizes, len(stream)))
        buffer[:count] = stream[pos : pos + count]
        pos += count
        frames.extend(receiver.frames_received(count))
    return frames


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(st.binary(max_size=80), max_size=12), chunks=st.lists(st.integers(1, 100), max_size=40))
def test_frames_match_the_frame_decoder_whatever_the_receive_sizes(payloads: list[bytes], chunks: list[int]) -> None:
    stream = b"".join(frame(i, p) for i, p in enumerate(payloads))
    receiver = FrameReceiver(scratch_size=64, large_frame=24)
    frames = receive(receiver, stream, chunks)
    expected = FrameDecoder().feed(stream)
    assert [(t, bytes(p)) for t, p in frames] == [(t, bytes(p)) for t, p in expected]
    assert receiver.buffered == 0
    assert all(p.readonly for _, p in frames)


def test_handed_out_frames_are_never_overwritten() -> None:
    receiver = FrameReceiver(scratch_size=64, large_frame=24)
    stream = b"".join(frame(i, bytes([i]) * (i % 20)) for i in range(40))
    frames = receive(receiver, stream, [7, 13, 64, 1, 30] * 40)
    assert [(t, bytes(p)) for t, p in frames] == [(i, bytes([i]) * (i % 20)) for i in range(40)]


def test_a_large_frame_gets_a_buffer_of_its_own_and_the_socket_fills_it_directly() -> None:
    receiver = FrameReceiver(scratch_size=256, large_frame=100)
    payload = bytes(range(256)) * 4
    stream = frame(7, b"ab") + frame(3, payload) + frame(9, b"cd")
    first = receiver.get_buffer()
    first[:40] = stream[:40]
    assert [(t, bytes(p)) for t, p in receiver.frames_received(40)] == [(7, b"ab")]
    direct = receiver.get_buffer()
    assert len(direct) == len(payload) - (40 - 10 - 8)  # exactly the rest of the large frame
    direct[:] = stream[40 : 10 + 8 + len(payload)]
    ((type_code, data),) = receiver.frames_received(len(direct))
    assert type_code == 3 and bytes(data) == payload
    assert isinstance(data.obj, bytearray) and len(data.obj) == len(payload)  # its own buffer, whole
    rest = 10 + 8 + len(payload)
    tail = receiver.get_buffer()
    tail[: len(stream) - rest] = stream[rest:]
    assert [(t, bytes(p)) for t, p in receiver.frames_received(len(stream) - rest)] == [(9, b"cd")]


def test_a_connection_holds_no_scratch_buffer_once_its_frames_are_handed_out() -> None:
    receiver = FrameReceiver()
    buffer = receiver.get_buffer()
    assert len(buffer) == SCRATCH_SIZE
    stream = frame(1, b"abc") + frame(2, b"de")
    buffer[: len(stream)] = stream
    frames = receiver.frames_received(len(stream))
    del buffer
    assert receiver._scratch == bytearray()  # let go: only the frames' views keep it alive
    fresh = receiver.get_buffer()
    fresh[:8] = b"\xff" * 8  # a new buffer: the frames handed out are untouched
    assert [(t, bytes(p)) for t, p in frames] == [(1, b"abc"), (2, b"de")]


def test_a_scratch_buffer_with_nothing_handed_out_is_reused() -> None:
    receiver = FrameReceiver(scratch_size=32, large_frame=16)
    buffer = receiver.get_buffer()
    buffer[:6] = frame(1, b"abcdef")[:6]
    assert receiver.frames_received(6) == []
    rest = receiver.get_buffer()
    assert rest.obj is buffer.obj
    rest[:8] = frame(1, b"abcdef")[6:]
    ((_, data),) = receiver.frames_received(8)
    assert bytes(data) == b"abcdef"


def test_a_bad_length_reports_the_frames_before_it() -> None:
    receiver = FrameReceiver()
    stream = frame(5, b"ok") + struct.pack(">ii", 4, -1)
    buffer = receiver.get_buffer()
    buffer[: len(stream)] = stream
    with pytest.raises(BadFrameError, match="negative") as caught:
        receiver.frames_received(len(stream))
    assert [(t, bytes(p)) for t, p in caught.value.frames_before] == [(5, b"ok")]


def test_large_frame_must_fit_the_scratch_buffer() -> None:
    with pytest.raises(ValueError, match="large_frame"):
        FrameReceiver(scratch_size=64, large_frame=60)


def test_server_connection_buffered_path_matches_receive_data() -> None:
    events = [struct.pack(">ii", 0, 3) + b"one", struct.pack(">ii", 0, 70) + b"x" * 70]
    stream = (encode(Hello(15, 5)) + encode(SetupAppend(1, WRITER, SEGMENT, ""))
              + encode(AppendBlockEnd(WRITER, len(events[0]), events[0], 1, 1, 7))
              + encode(ReadSegment(SEGMENT, 0, 100, "", 8))
              + encode(AppendBlockEnd(WRITER, len(events[1]), events[1], 1, 2, 9)))
    expected = ServerConnection().receive_data(stream)
    assert len(expected) == 5
    conn = ServerConnection()
    conn._receiver = FrameReceiver(scratch_size=64, large_frame=40)  # the second append takes the large path
    items: list[object] = []
    pos = 0
    while pos < len(stream):
        buffer = conn.get_buffer()
        count = min(len(buffer), len(stream) - pos, 5)
        buffer[:count] = stream[pos : pos + count]
        pos += count
        items.extend(conn.buffer_updated(count))
    assert [bytes(i.data) if isinstance(i, Append) else i for i in items] == \
        [bytes(i.data) if isinstance(i, Append) else i for i in expected]


def test_server_connection_buffered_path_reports_protocol_errors_with_the_items_before() -> None:
    conn = ServerConnection()
    stream = encode(SetupAppend(1, WRITER, SEGMENT, "")) + encode(AppendBlockEnd(OTHER, 3, b"abc", 1, 1, 2))
    buffer = conn.get_buffer()
    buffer[: len(stream)] = stream
    with pytest.raises(ProtocolError, match="has not set up appends") as caught:
        conn.buffer_updated(len(stream))
    assert getattr(caught.value, "items_before", None) == [SetupAppend(1, WRITER, SEGMENT, "")]


def test_append_data_of_a_large_frame_is_kept_by_the_container_without_a_copy() -> None:
    from anabranch.segmentstore.container import _kept

    data = struct.pack(">ii", 0, 200_000) + bytes(200_000)
    stream = encode(SetupAppend(1, WRITER, SEGMENT, "")) + encode(AppendBlockEnd(WRITER, len(data), data, 1, 1, 2))
    conn = ServerConnection()
    items: list[object] = []
    pos = 0
    while pos < len(stream):
        buffer = conn.get_buffer()
        count = min(len(buffer), len(stream) - pos)
        buffer[:count] = stream[pos : pos + count]
        pos += count
        items.extend(conn.buffer_updated(count))
    append = items[-1]
    assert isinstance(append, Append) and bytes(append.data) == data
    kept = _kept(append.data)
    assert isinstance(kept, memoryview) and isinstance(kept.obj, bytearray) and kept.obj is append.data.obj
    writable = memoryview(bytearray(data))
    assert isinstance(_kept(writable), bytes)  # a writable buffer could change under the read index: copied
