"""Property tests: decode(encode(x)) == x for every command; random bytes only ever raise ProtocolError."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anabranch.errors import ProtocolError
from anabranch.protocol import codec
from anabranch.protocol.codec import COMMANDS, CommandDecoder, FrameDecoder, decode, encode, encode_append_block_end
from anabranch.protocol.commands import (
    AppendBlockEnd,
    ChunkInfo,
    ConditionalAttributeUpdate,
    Hello,
    KeepAlive,
    TableEntry,
    TableIteratorArgs,
    TableKey,
    WireCommand,
)
from anabranch.protocol.wiretypes import Opt, WireType

I32 = st.integers(-(2**31), 2**31 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
BLOB = st.binary(max_size=40)
TEXT = st.text(max_size=20)
KEY = st.builds(TableKey, BLOB, I64)

STRATEGIES: dict[WireType, st.SearchStrategy[Any]] = {
    WireType.I8: st.integers(-128, 127),
    WireType.I32: I32,
    WireType.I64: I64,
    WireType.BOOL: st.booleans(),
    WireType.UTF: TEXT,
    WireType.UUID: st.uuids(),
    WireType.BYTES: BLOB,
    WireType.REST: BLOB,
    WireType.EVENT: BLOB,
    WireType.I64_LIST: st.lists(I64, max_size=5).map(tuple),
    WireType.UTF_LIST: st.lists(TEXT, max_size=5).map(tuple),
    WireType.TABLE_ENTRIES: st.lists(st.builds(TableEntry, KEY, BLOB), max_size=4).map(tuple),
    WireType.TABLE_KEYS: st.lists(KEY, max_size=4).map(tuple),
    WireType.ITERATOR_ARGS: st.builds(TableIteratorArgs, BLOB, BLOB, BLOB, BLOB),
    WireType.ATTRIBUTE_UPDATES: st.lists(
        st.builds(ConditionalAttributeUpdate, st.uuids(), st.integers(-128, 127), I64, I64), max_size=3
    ).map(tuple),
    WireType.BATCH_MERGE_RESULTS: st.lists(st.tuples(TEXT, I64), max_size=4).map(tuple),
    WireType.CHUNK_INFOS: st.lists(st.builds(ChunkInfo, I64, I64, I64, TEXT, st.booleans()), max_size=3).map(tuple),
}


def command_strategy(cls: type[WireCommand]) -> st.SearchStrategy[WireCommand]:
    fields = [STRATEGIES[spec.type if isinstance(spec, Opt) else spec] for _, spec in cls.LAYOUT]
    return st.tuples(*fields).map(lambda values: cls(*values))


ANY_COMMAND = st.sampled_from(sorted(COMMANDS.values(), key=lambda c: c.TYPE)).flatmap(command_strategy)


ALL_CLASSES = sorted(COMMANDS.values(), key=lambda c: c.TYPE)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=[c.__name__ for c in ALL_CLASSES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip(cls: type[WireCommand], data: st.DataObject) -> None:
    cmd = data.draw(command_strategy(cls))
    frame = encode(cmd)
    assert int.from_bytes(frame[:4], "big", signed=True) == cls.TYPE
    assert int.from_bytes(frame[4:8], "big") == len(frame) - 8
    assert decode(cls.TYPE, frame[8:]) == cmd
    assert frame == codec._GENERIC_ENCODERS[cls](cmd)
    assert codec._GENERIC_DECODERS[cls.TYPE](memoryview(frame[8:])) == cmd


@settings(max_examples=100, deadline=None)
@given(commands=st.lists(ANY_COMMAND, max_size=6), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_command_decoder_reassembles_any_split(commands: list[WireCommand], cuts: list[int]) -> None:
    stream = b"".join(encode(c) for c in commands)
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = CommandDecoder()
    got: list[WireCommand] = []
    for start, stop in itertools.pairwise(bounds):
        got.extend(decoder.feed(stream[start:stop]))
    assert got == commands


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=8))
def test_frame_decoder_fuzz_raises_only_protocol_error(chunks: list[bytes]) -> None:
    frames = FrameDecoder()
    commands = CommandDecoder()
    for decoder in (frames, commands):
        with contextlib.suppress(ProtocolError):
            for chunk in chunks:
                decoder.feed(chunk)


@settings(max_examples=300, deadline=None)
@given(type_code=st.sampled_from(sorted(COMMANDS)), payload=st.binary(max_size=80))
def test_decode_fuzz_raises_only_protocol_error(type_code: int, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(type_code, payload)


def test_frame_decoder_limits() -> None:
    with pytest.raises(ProtocolError, match="negative"):
        FrameDecoder().feed(bytes.fromhex("00000004 ffffffff".replace(" ", "")))
    with pytest.raises(ProtocolError, match="limited"):
        FrameDecoder().feed(bytes.fromhex("00000004 00fffff8".replace(" ", "")))
    decoder = FrameDecoder()
    assert decoder.feed(bytes.fromhex("00000004 00fffff7".replace(" ", ""))) == []
    assert decoder.buffered == 8


def test_frame_decoder_byte_by_byte_and_payload_views_survive() -> None:
    stream = encode(KeepAlive()) + encode(Hello(17, 5)) * 2
    decoder = FrameDecoder()
    frames = []
    for i in range(len(stream)):
        frames.extend(decoder.feed(stream[i : i + 1]))
    assert [(t, bytes(p)) for t, p in frames] == [(100, b""), (-127, stream[-8:]), (-127, stream[-8:])]
    assert decoder.buffered == 0


def test_encode_append_block_end_does_not_copy_parts() -> None:
    writer = uuid.uuid4()
    part = memoryview(b"\0\0\0\0\0\0\0\x01a")
    bufs = encode_append_block_end(writer, 18, [part, part], 18, 2, 9, 3)
    assert bufs[1] is part and bufs[2] is part
    assert b"".join(bufs) == encode(AppendBlockEnd(writer, 18, bytes(part) * 2, 2, 9, 3))
