"""ServerConnection: append reassembly for Java and Rust clients, conditional appends, protocol errors."""

from __future__ import annotations

import itertools
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anabranch.errors import ProtocolError
from anabranch.protocol.codec import encode
from anabranch.protocol.commands import (
    NULL_ATTRIBUTE_VALUE,
    AppendBlock,
    AppendBlockEnd,
    ConditionalAppend,
    ConditionalBlockEnd,
    DataAppended,
    FlushToStorage,
    Hello,
    KeepAlive,
    ListStorageChunks,
    Padding,
    PartialEvent,
    ReadSegment,
    SetupAppend,
)
from anabranch.protocol.server_connection import Append, ServerConnection

WRITER = uuid.UUID(int=0x1234)
OTHER = uuid.UUID(int=0x5678)
SEGMENT = "sc/st/0.#epoch.0"


def event(payload: bytes) -> bytes:
    return struct.pack(">ii", 0, len(payload)) + payload


def frame(type_code: int, payload: bytes) -> bytes:
    return struct.pack(">ii", type_code, len(payload)) + payload


def append_block(writer: uuid.UUID, content: bytes) -> bytes:
    return frame(AppendBlock.TYPE, writer.bytes + content)


def setup(writer: uuid.UUID = WRITER, segment: str = SEGMENT, request_id: int = 1) -> bytes:
    return encode(SetupAppend(request_id, writer, segment, ""))


def as_bytes(item: Append) -> Append:
    return Append(
        item.writer_id,
        item.segment,
        item.event_number,
        item.event_count,
        bytes(item.data),
        item.request_id,
        item.expected_offset,
    )


def feed_all(conn: ServerConnection, stream: bytes, chunk: int | None = None) -> list[object]:
    if chunk is None:
        items = conn.receive_data(stream)
    else:
        items = []
        for i in range(0, len(stream), chunk):
            items.extend(conn.receive_data(stream[i : i + chunk]))
    return [as_bytes(i) if isinstance(i, Append) else i for i in items]


E1, E2, E3 = event(b"one"), event(b"two!"), event(b"three-3")


def java_stream() -> tuple[bytes, list[object]]:
    """Java client: whole events + PartialEvent, then a padded block, then a block filled exactly."""
    partial = E3[:5]
    block1 = E1 + E2 + frame(PartialEvent.TYPE, partial)
    end1 = encode(AppendBlockEnd(WRITER, len(E1 + E2), E3[5:], 3, 3, 10))
    block2 = E1 + frame(Padding.TYPE, bytes(6))
    end2 = encode(AppendBlockEnd(WRITER, len(E1), b"", 1, 4, 11))
    block3 = E2
    end3 = encode(AppendBlockEnd(WRITER, len(E2), b"", 1, 5, 12))
    stream = (
        setup()
        + append_block(WRITER, block1)
        + end1
        + append_block(WRITER, block2)
        + end2
        + append_block(WRITER, block3)
        + end3
    )
    expected: list[object] = [
        SetupAppend(1, WRITER, SEGMENT, ""),
        Append(WRITER, SEGMENT, 3, 3, E1 + E2 + E3, 10, None),
        Append(WRITER, SEGMENT, 4, 1, E1, 11, None),
        Append(WRITER, SEGMENT, 5, 1, E2, 12, None),
    ]
    return stream, expected


def rust_stream() -> tuple[bytes, list[object]]:
    stream = (
        encode(Hello(15, 5))
        + setup()
        + encode(AppendBlockEnd(WRITER, len(E1 + E2), E1 + E2, 2, 2, 7))
        + encode(ReadSegment(SEGMENT, 0, 100, "", 8))
        + encode(AppendBlockEnd(WRITER, len(E3), E3, 1, 3, 9))
    )
    expected: list[object] = [
        Hello(15, 5),
        SetupAppend(1, WRITER, SEGMENT, ""),
        Append(WRITER, SEGMENT, 2, 2, E1 + E2, 7, None),
        ReadSegment(SEGMENT, 0, 100, "", 8),
        Append(WRITER, SEGMENT, 3, 1, E3, 9, None),
    ]
    return stream, expected


def conditional_stream() -> tuple[bytes, list[object]]:
    stream = (
        setup()
        + encode(ConditionalAppend(WRITER, 4, 100, b"payload", 5))
        + encode(ConditionalBlockEnd(WRITER, 5, 119, b"raw-bytes", 6))
        + frame(ConditionalAppend.TYPE, encode(ConditionalAppend(WRITER, 6, 128, b"no-request-id", 7))[8:-8])
    )
    expected: list[object] = [
        SetupAppend(1, WRITER, SEGMENT, ""),
        Append(WRITER, SEGMENT, 4, 1, event(b"payload"), 5, 100),
        Append(WRITER, SEGMENT, 5, 1, b"raw-bytes", 6, 119),
        Append(WRITER, SEGMENT, 6, 1, event(b"no-request-id"), -1, 128),
    ]
    return stream, expected


STREAMS = {"java": java_stream, "rust": rust_stream, "conditional": conditional_stream}


@pytest.mark.parametrize("style", list(STREAMS))
def test_whole_stream(style: str) -> None:
    stream, expected = STREAMS[style]()
    assert feed_all(ServerConnection(), stream) == expected


@pytest.mark.parametrize("style", list(STREAMS))
def test_byte_by_byte(style: str) -> None:
    stream, expected = STREAMS[style]()
    assert feed_all(ServerConnection(), stream, chunk=1) == expected


@settings(max_examples=50, deadline=None)
@given(style=st.sampled_from(list(STREAMS)), cuts=st.lists(st.integers(0, 300), max_size=10))
def test_split_anywhere(style: str, cuts: list[int]) -> None:
    stream, expected = STREAMS[style]()
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    conn = ServerConnection()
    items: list[object] = []
    for start, stop in itertools.pairwise(bounds):
        items.extend(feed_all(conn, stream[start:stop]))
    assert items == expected


def test_rust_append_data_is_a_view_not_a_copy() -> None:
    conn = ServerConnection()
    conn.receive_data(setup())
    (item,) = conn.receive_data(encode(AppendBlockEnd(WRITER, len(E1), E1, 1, 1, 2)))
    assert isinstance(item, Append)
    assert isinstance(item.data, memoryview)
    assert bytes(item.data) == E1


def test_setup_replaces_segment_and_resets_event_numbers() -> None:
    conn = ServerConnection()
    conn.receive_data(setup() + encode(AppendBlockEnd(WRITER, 3, b"abc", 1, 50, 2)))
    assert conn.writer_segment(WRITER) == SEGMENT
    items = conn.receive_data(setup(segment="other") + encode(AppendBlockEnd(WRITER, 1, b"d", 1, 1, 3)))
    assert isinstance(items[1], Append)
    assert items[1].segment == "other"
    assert conn.writer_segment(OTHER) is None


def test_equal_event_number_is_allowed() -> None:
    conn = ServerConnection()
    conn.receive_data(setup() + encode(AppendBlockEnd(WRITER, 1, b"a", 1, 5, 2)))
    assert len(conn.receive_data(encode(AppendBlockEnd(WRITER, 1, b"a", 1, 5, 3)))) == 1


def test_first_event_number_may_be_anything() -> None:
    conn = ServerConnection()
    conn.receive_data(setup())
    (item,) = conn.receive_data(encode(ConditionalBlockEnd(WRITER, NULL_ATTRIBUTE_VALUE, 0, b"a", 2)))
    assert isinstance(item, Append)
    assert item.event_number == NULL_ATTRIBUTE_VALUE


def test_keep_alive_and_hello_are_requests() -> None:
    assert feed_all(ServerConnection(), encode(KeepAlive()) + encode(Hello(17, 5))) == [KeepAlive(), Hello(17, 5)]


def test_remove_writer_requires_a_new_setup() -> None:
    conn = ServerConnection()
    conn.receive_data(setup() + encode(AppendBlockEnd(WRITER, 1, b"a", 1, 5, 2)))
    conn.remove_writer(WRITER)
    conn.remove_writer(OTHER)
    with pytest.raises(ProtocolError, match="not set up"):
        conn.receive_data(encode(AppendBlockEnd(WRITER, 1, b"a", 1, 6, 3)))
    conn = ServerConnection()
    conn.receive_data(setup())
    conn.remove_writer(WRITER)
    items = conn.receive_data(setup() + encode(AppendBlockEnd(WRITER, 1, b"a", 1, 1, 3)))
    assert isinstance(items[1], Append)


BAD_STREAMS: dict[str, tuple[bytes, str]] = {
    "append without setup": (encode(AppendBlockEnd(WRITER, 1, b"a", 1, 1, 2)), "not set up"),
    "append block without setup": (append_block(WRITER, E1), "not set up"),
    "conditional append without setup": (encode(ConditionalAppend(WRITER, 1, 0, b"a", 2)), "not set up"),
    "conditional block end without setup": (encode(ConditionalBlockEnd(WRITER, 1, 0, b"a", 2)), "not set up"),
    "setup of another writer": (setup(OTHER) + encode(AppendBlockEnd(WRITER, 1, b"a", 1, 1, 2)), "not set up"),
    "zero events": (setup() + encode(AppendBlockEnd(WRITER, 1, b"a", 0, 1, 2)), "must be > 0"),
    "negative events": (setup() + encode(AppendBlockEnd(WRITER, 1, b"a", -3, 1, 2)), "must be > 0"),
    "event number goes back": (
        setup() + encode(AppendBlockEnd(WRITER, 1, b"a", 1, 5, 2)) + encode(AppendBlockEnd(WRITER, 1, b"a", 1, 4, 3)),
        "below 5",
    ),
    "conditional event number goes back": (
        setup() + encode(AppendBlockEnd(WRITER, 1, b"a", 1, 5, 2)) + encode(ConditionalAppend(WRITER, 4, 0, b"a", 3)),
        "below 5",
    ),
    "conditional block end event number goes back": (
        setup()
        + encode(ConditionalBlockEnd(WRITER, 5, 0, b"a", 2))
        + encode(ConditionalBlockEnd(WRITER, 4, 1, b"", 3)),
        "below 5",
    ),
    "request between block and end": (
        setup()
        + append_block(WRITER, E1)
        + encode(KeepAlive())
        + encode(AppendBlockEnd(WRITER, len(E1), b"", 1, 1, 2)),
        "expected AppendBlockEnd",
    ),
    "two blocks": (setup() + append_block(WRITER, E1) + append_block(WRITER, E1), "expected AppendBlockEnd"),
    "block end of another writer": (
        setup() + setup(OTHER) + append_block(WRITER, E1) + encode(AppendBlockEnd(OTHER, len(E1), b"", 1, 1, 2)),
        "follows an AppendBlock",
    ),
    "size of whole events too big": (
        setup() + append_block(WRITER, E1) + encode(AppendBlockEnd(WRITER, len(E1) + 1, b"", 1, 1, 2)),
        "outside",
    ),
    "negative size of whole events": (
        setup() + append_block(WRITER, E1) + encode(AppendBlockEnd(WRITER, -1, b"", 1, 1, 2)),
        "outside",
    ),
    "remainder too short for a command": (
        setup() + append_block(WRITER, E1 + b"xyz") + encode(AppendBlockEnd(WRITER, len(E1), b"", 1, 1, 2)),
        "cannot hold",
    ),
    "embedded length mismatch": (
        setup()
        + append_block(WRITER, E1 + frame(PartialEvent.TYPE, b"ab") + b"!")
        + encode(AppendBlockEnd(WRITER, len(E1), b"c", 1, 1, 2)),
        "declares 2 bytes",
    ),
    "embedded command not partial or padding": (
        setup()
        + append_block(WRITER, E1 + encode(KeepAlive()))
        + encode(AppendBlockEnd(WRITER, len(E1), b"", 1, 1, 2)),
        "only PartialEvent or Padding",
    ),
    "padding with block end data": (
        setup()
        + append_block(WRITER, E1 + frame(Padding.TYPE, bytes(4)))
        + encode(AppendBlockEnd(WRITER, len(E1), b"x", 1, 1, 2)),
        "no data",
    ),
    "reply sent to the server": (encode(DataAppended(WRITER, 1, 0, 1, 1)), "not a request"),
    "top-level padding": (encode(Padding(b"\0")), "not a request"),
    "top-level partial event": (encode(PartialEvent(b"a")), "not a request"),
    "type 0 at top level": (frame(0, event(b"a")), "type 0"),
    "unknown type": (frame(72, b""), "unknown"),
    "flush to storage": (encode(FlushToStorage(0, "", 1)), "admin port"),
    "list storage chunks": (encode(ListStorageChunks("s", "", 1)), "admin port"),
    "truncated request": (frame(SetupAppend.TYPE, b"\0\0\0"), "truncated"),
    "truncated append block": (frame(AppendBlock.TYPE, bytes(15)), "truncated"),
    "truncated block end": (setup() + frame(AppendBlockEnd.TYPE, WRITER.bytes + bytes(8)), "truncated"),
    "conditional event type not 0": (
        setup() + frame(ConditionalAppend.TYPE, WRITER.bytes + bytes(16) + struct.pack(">ii", 1, 0)),
        "type 1",
    ),
    "conditional event too long": (
        setup() + frame(ConditionalAppend.TYPE, WRITER.bytes + bytes(16) + struct.pack(">ii", 0, 5) + b"abc"),
        "declares 5",
    ),
    "conditional block end without request id": (
        setup() + frame(ConditionalBlockEnd.TYPE, encode(ConditionalBlockEnd(WRITER, 1, 0, b"a", 2))[8:-8]),
        "declares",
    ),
    "negative frame length": (struct.pack(">ii", 1, -1), "negative"),
    "frame too long": (struct.pack(">ii", 4, 0x00FFFFFF), "limited"),
}


@pytest.mark.parametrize("name", list(BAD_STREAMS))
def test_protocol_errors(name: str) -> None:
    stream, message = BAD_STREAMS[name]
    with pytest.raises(ProtocolError, match=message):
        ServerConnection().receive_data(stream)


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from([b"", setup(), setup() + append_block(WRITER, E1)]),
    chunks=st.lists(st.binary(max_size=64), max_size=6),
)
def test_random_bytes_raise_only_protocol_error(prefix: bytes, chunks: list[bytes]) -> None:
    conn = ServerConnection()
    try:
        conn.receive_data(prefix)
        for chunk in chunks:
            conn.receive_data(chunk)
    except ProtocolError:
        pass
