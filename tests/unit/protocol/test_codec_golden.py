"""Golden bytes for every wire command, written by hand from the spec (wire-protocol.md §2).

Each case is a full frame: i32 type, i32 payload length, payload. Abbreviations: W = the writer
UUID 00..0f, R7 = i64 request id 7, S = utf "s", T0 = empty utf, MIN = Long.MIN_VALUE.
"""

from __future__ import annotations

import uuid

import pytest

from anabranch.errors import ProtocolError
from anabranch.protocol.codec import COMMANDS, decode, encode
from anabranch.protocol.commands import (
    NO_VERSION,
    NULL_ATTRIBUTE_VALUE,
    AppendBlock,
    AppendBlockEnd,
    AppendSetup,
    AuthTokenCheckFailed,
    ChunkInfo,
    ConditionalAppend,
    ConditionalAttributeUpdate,
    ConditionalBlockEnd,
    ConditionalCheckFailed,
    CreateSegment,
    CreateTableSegment,
    CreateTransientSegment,
    DataAppended,
    DeleteSegment,
    DeleteTableSegment,
    ErrorMessage,
    FlushToStorage,
    GetSegmentAttribute,
    GetStreamSegmentInfo,
    GetTableSegmentInfo,
    Hello,
    InvalidEventNumber,
    KeepAlive,
    ListStorageChunks,
    LocateOffset,
    MergeSegments,
    MergeSegmentsBatch,
    NoSuchSegment,
    OffsetLocated,
    OperationUnsupported,
    Padding,
    PartialEvent,
    ReadSegment,
    ReadTable,
    ReadTableEntries,
    ReadTableEntriesDelta,
    ReadTableKeys,
    RemoveTableKeys,
    SealSegment,
    SegmentAlreadyExists,
    SegmentAttribute,
    SegmentAttributeUpdated,
    SegmentCreated,
    SegmentDeleted,
    SegmentIsSealed,
    SegmentIsTruncated,
    SegmentPolicyUpdated,
    SegmentRead,
    SegmentsBatchMerged,
    SegmentSealed,
    SegmentsMerged,
    SegmentTruncated,
    SetupAppend,
    StorageChunksListed,
    StorageFlushed,
    StreamSegmentInfo,
    TableEntriesDeltaRead,
    TableEntriesRead,
    TableEntriesUpdated,
    TableEntry,
    TableIteratorArgs,
    TableKey,
    TableKeyBadVersion,
    TableKeyDoesNotExist,
    TableKeysRead,
    TableKeysRemoved,
    TableRead,
    TableSegmentInfo,
    TableSegmentNotEmpty,
    TruncateSegment,
    UpdateSegmentAttribute,
    UpdateSegmentPolicy,
    UpdateTableEntries,
    WireCommand,
    WrongHost,
)
from anabranch.protocol.wiretypes import Opt, WireType

W_ID = uuid.UUID("00010203-0405-0607-0809-0a0b0c0d0e0f")
W = "000102030405060708090a0b0c0d0e0f"
R7 = "0000000000000007"
S = "000173"
T0 = "0000"
MIN = "8000000000000000"
NEG1 = "ffffffffffffffff"
KEY_K_MIN = "0000000d 00000001 6b" + MIN
KEY_K_3 = "0000000d 00000001 6b 0000000000000003"
VALUE_V = "00000005 00000001 76"

GOLDEN: list[tuple[WireCommand, str]] = [
    (Hello(17, 5), "ffffff81 00000008 00000011 00000005"),
    (Padding(b"\0\0\0"), "ffffffff 00000003 000000"),
    (PartialEvent(b"ab"), "fffffffe 00000002 6162"),
    (FlushToStorage(3, "", 7), f"fffffffd 0000000e 00000003 {T0} {R7}"),
    (StorageFlushed(7), f"fffffffc 00000008 {R7}"),
    (ListStorageChunks("s", "", 7), f"fffffffb 0000000d {S} {T0} {R7}"),
    (
        StorageChunksListed(7, (ChunkInfo(1, 2, 3, "c", True),)),
        f"fffffffa 00000028 {R7} 00000001 0000000000000001 0000000000000002 0000000000000003 000163 01",
    ),
    (KeepAlive(), "00000064 00000000"),
    (SetupAppend(7, W_ID, "s", ""), f"00000001 0000001d {R7} {W} {S} {T0}"),
    (AppendSetup(7, "s", W_ID, NULL_ATTRIBUTE_VALUE), f"00000002 00000023 {R7} {S} {W} {MIN}"),
    (AppendBlock(W_ID, b"xy"), f"00000003 00000012 {W} 7879"),
    (
        AppendBlockEnd(W_ID, 2, b"xy", 1, 5, 7),
        f"00000004 0000002e {W} 00000002 00000002 7879 00000001 0000000000000005 {R7}",
    ),
    (
        ConditionalAppend(W_ID, 5, 10, b"xy", 7),
        f"00000005 00000032 {W} 0000000000000005 000000000000000a 00000000 00000002 7879 {R7}",
    ),
    (
        ConditionalBlockEnd(W_ID, 5, 10, b"xy", 7),
        f"00000059 0000002e {W} 0000000000000005 000000000000000a 00000002 7879 {R7}",
    ),
    (
        DataAppended(W_ID, 5, 4, 7, 100),
        f"00000007 00000030 {W} 0000000000000005 0000000000000004 {R7} 0000000000000064",
    ),
    (ConditionalCheckFailed(W_ID, 5, 7), f"00000008 00000020 {W} 0000000000000005 {R7}"),
    (InvalidEventNumber(W_ID, 7, "", 5), f"00000037 00000022 {W} {R7} {T0} 0000000000000005"),
    (CreateTransientSegment(7, W_ID, "s", ""), f"00000028 0000001d {R7} {W} {S} {T0}"),
    (ReadSegment("s", 10, 100, "", 7), f"00000009 00000019 {S} 000000000000000a 00000064 {T0} {R7}"),
    (
        SegmentRead("s", 10, True, False, b"xy", 7),
        f"0000000a 0000001b {S} 000000000000000a 01 00 00000002 7879 {R7}",
    ),
    (GetStreamSegmentInfo(7, "s", ""), f"0000000b 0000000d {R7} {S} {T0}"),
    (
        StreamSegmentInfo(7, "s", True, False, False, 1000, 20, 5),
        f"0000000c 00000026 {R7} {S} 01 00 00 00000000000003e8 0000000000000014 0000000000000005",
    ),
    (GetSegmentAttribute(7, "s", W_ID, ""), f"00000022 0000001d {R7} {S} {W} {T0}"),
    (SegmentAttribute(7, NULL_ATTRIBUTE_VALUE), f"00000023 00000010 {R7} {MIN}"),
    (
        UpdateSegmentAttribute(7, "s", W_ID, 3, NULL_ATTRIBUTE_VALUE, ""),
        f"00000024 0000002d {R7} {S} {W} 0000000000000003 {MIN} {T0}",
    ),
    (SegmentAttributeUpdated(7, True), f"00000025 00000009 {R7} 01"),
    (LocateOffset(7, "s", 10, ""), f"00000029 00000015 {R7} {S} 000000000000000a {T0}"),
    (OffsetLocated(7, "s", 10), f"0000002a 00000013 {R7} {S} 000000000000000a"),
    (CreateSegment(7, "s", 100, 1, "", 0), f"00000014 0000001a {R7} {S} 00000064 01 {T0} 0000000000000000"),
    (SegmentCreated(7, "s"), f"00000015 0000000b {R7} {S}"),
    (SealSegment(7, "s", ""), f"0000001c 0000000d {R7} {S} {T0}"),
    (SegmentSealed(7, "s"), f"0000001d 0000000b {R7} {S}"),
    (DeleteSegment(7, "s", ""), f"0000001e 0000000d {R7} {S} {T0}"),
    (SegmentDeleted(7, "s"), f"0000001f 0000000b {R7} {S}"),
    (UpdateSegmentPolicy(7, "s", 100, 2, ""), f"00000020 00000012 {R7} {S} 00000064 02 {T0}"),
    (SegmentPolicyUpdated(7, "s"), f"00000021 0000000b {R7} {S}"),
    (TruncateSegment(7, "s", 10, ""), f"00000026 00000015 {R7} {S} 000000000000000a {T0}"),
    (SegmentTruncated(7, "s"), f"00000027 0000000b {R7} {S}"),
    (
        MergeSegments(7, "t", "s", "", (ConditionalAttributeUpdate(W_ID, 4, 3, NULL_ATTRIBUTE_VALUE),)),
        f"0000003a 00000035 {R7} 000174 {S} {T0} 00000001 {W} 04 0000000000000003 {MIN}",
    ),
    (SegmentsMerged(7, "t", "s", 20), f"0000003b 00000016 {R7} 000174 {S} 0000000000000014"),
    (MergeSegmentsBatch(7, "t", ("s", "u"), ""), f"0000005a 00000017 {R7} 000174 00000002 {S} 000175 {T0}"),
    (
        SegmentsBatchMerged(7, "t", (("s", 10), ("u", 20))),
        f"0000005b 00000025 {R7} 000174 00000002 {S} 000000000000000a 000175 0000000000000014",
    ),
    (WrongHost(7, "s", "", ""), f"00000032 0000000f {R7} {S} {T0} {T0}"),
    (SegmentIsSealed(7, "s", "", 5), f"00000033 00000015 {R7} {S} {T0} 0000000000000005"),
    (SegmentAlreadyExists(7, "s", ""), f"00000034 0000000d {R7} {S} {T0}"),
    (NoSuchSegment(7, "s", "", -1), f"00000035 00000015 {R7} {S} {T0} {NEG1}"),
    (
        SegmentIsTruncated(7, "s", 3, "", 10),
        f"00000038 0000001d {R7} {S} 0000000000000003 {T0} 000000000000000a",
    ),
    (OperationUnsupported(7, "op", ""), f"00000039 0000000e {R7} 00026f70 {T0}"),
    (AuthTokenCheckFailed(7, "", 1), f"0000003c 0000000e {R7} {T0} 00000001"),
    (ErrorMessage(7, "s", "m", 0), f"0000003d 00000012 {R7} {S} 00016d 00000000"),
    (TableSegmentNotEmpty(7, "s", ""), f"00000050 0000000d {R7} {S} {T0}"),
    (TableKeyDoesNotExist(7, "s", ""), f"00000051 0000000d {R7} {S} {T0}"),
    (TableKeyBadVersion(7, "s", ""), f"00000052 0000000d {R7} {S} {T0}"),
    (GetTableSegmentInfo(7, "s", ""), f"00000044 0000000d {R7} {S} {T0}"),
    (
        TableSegmentInfo(7, "s", 0, 20, 2, 0),
        f"00000045 00000027 {R7} {S} 0000000000000000 0000000000000014 0000000000000002 00000000",
    ),
    (
        CreateTableSegment(7, "s", "", False, 0, 0),
        f"00000046 0000001a {R7} {S} {T0} 00 00000000 0000000000000000",
    ),
    (DeleteTableSegment(7, "s", True, ""), f"00000047 0000000e {R7} {S} 01 {T0}"),
    (
        UpdateTableEntries(7, "s", "", (TableEntry(TableKey(b"k", NO_VERSION), b"v"),), -1),
        f"0000004a 00000033 {R7} {S} {T0} 00000001 {KEY_K_MIN} {VALUE_V} {NEG1}",
    ),
    (TableEntriesUpdated(7, (3, 4)), f"0000004b 0000001c {R7} 00000002 0000000000000003 0000000000000004"),
    (
        RemoveTableKeys(7, "s", "", (TableKey(b"k", 3),), -1),
        f"0000004c 0000002a {R7} {S} {T0} 00000001 {KEY_K_3} {NEG1}",
    ),
    (TableKeysRemoved(7, "s"), f"0000004d 0000000b {R7} {S}"),
    (ReadTable(7, "s", "", (TableKey(b"k"),)), f"0000004e 00000022 {R7} {S} {T0} 00000001 {KEY_K_MIN}"),
    (
        TableRead(7, "s", (TableEntry(TableKey(b"k", -1), b""),)),
        f"0000004f 00000028 {R7} {S} 00000001 0000000d 00000001 6b {NEG1} 00000004 00000000",
    ),
    (
        ReadTableKeys(7, "s", "", 10, TableIteratorArgs(b"c")),
        f"00000053 00000022 {R7} {S} {T0} 0000000a 00000001 63 00000000 00000000 00000000",
    ),
    (
        TableKeysRead(7, "s", (TableKey(b"k", 3),), b"c"),
        f"00000054 00000025 {R7} {S} 00000001 {KEY_K_3} 00000001 63",
    ),
    (
        ReadTableEntries(7, "s", "", 10, TableIteratorArgs()),
        f"00000055 00000021 {R7} {S} {T0} 0000000a 00000000 00000000 00000000 00000000",
    ),
    (
        TableEntriesRead(7, "s", (TableEntry(TableKey(b"k", 3), b"v"),), b""),
        f"00000056 0000002d {R7} {S} 00000001 {KEY_K_3} {VALUE_V} 00000000",
    ),
    (ReadTableEntriesDelta(7, "s", "", 20, 10), f"00000058 00000019 {R7} {S} {T0} 0000000000000014 0000000a"),
    (
        TableEntriesDeltaRead(7, "s", (), False, True, 20),
        f"00000057 00000019 {R7} {S} 00000000 00 01 0000000000000014",
    ),
]

OPTIONAL_ABSENT: list[tuple[int, str, WireCommand]] = [
    (4, f"{W} 00000002 00000002 7879 00000001 0000000000000005", AppendBlockEnd(W_ID, 2, b"xy", 1, 5, -1)),
    (5, f"{W} 0000000000000005 000000000000000a 00000000 00000002 7879", ConditionalAppend(W_ID, 5, 10, b"xy", -1)),
    (7, f"{W} 0000000000000005", DataAppended(W_ID, 5, NULL_ATTRIBUTE_VALUE, -1, -1)),
    (7, f"{W} 0000000000000005 0000000000000004", DataAppended(W_ID, 5, 4, -1, -1)),
    (8, f"{W} 0000000000000005", ConditionalCheckFailed(W_ID, 5, -1)),
    (55, f"{W} {R7}", InvalidEventNumber(W_ID, 7, "", -1)),
    (9, f"{S} 000000000000000a 00000064 {T0}", ReadSegment("s", 10, 100, "", -1)),
    (10, f"{S} 000000000000000a 01 00 00000002 7879", SegmentRead("s", 10, True, False, b"xy", -1)),
    (
        12,
        f"{R7} {S} 01 00 00 00000000000003e8 0000000000000014",
        StreamSegmentInfo(7, "s", True, False, False, 1000, 20, 0),
    ),
    (20, f"{R7} {S} 00000064 01 {T0}", CreateSegment(7, "s", 100, 1, "", 0)),
    (58, f"{R7} 000174 {S} {T0}", MergeSegments(7, "t", "s", "", ())),
    (59, f"{R7} 000174 {S}", SegmentsMerged(7, "t", "s", -1)),
    (50, f"{R7} {S} {T0}", WrongHost(7, "s", "", "")),
    (51, f"{R7} {S}", SegmentIsSealed(7, "s", "", -1)),
    (52, f"{R7} {S}", SegmentAlreadyExists(7, "s", "")),
    (53, f"{R7} {S} {T0}", NoSuchSegment(7, "s", "", -1)),
    (56, f"{R7} {S} 0000000000000003", SegmentIsTruncated(7, "s", 3, "", -1)),
    (57, f"{R7} 00026f70", OperationUnsupported(7, "op", "")),
    (60, f"{R7}", AuthTokenCheckFailed(7, "", -1)),
    (70, f"{R7} {S} {T0}", CreateTableSegment(7, "s", "", False, 0, 0)),
    (70, f"{R7} {S} {T0} 01 00000010", CreateTableSegment(7, "s", "", True, 16, 0)),
    (74, f"{R7} {S} {T0} 00000000", UpdateTableEntries(7, "s", "", (), -1)),
    (76, f"{R7} {S} {T0} 00000001 {KEY_K_3}", RemoveTableKeys(7, "s", "", (TableKey(b"k", 3),), -1)),
    (83, f"{R7} {S} {T0} 0000000a 00000001 63", ReadTableKeys(7, "s", "", 10, TableIteratorArgs(b"c"))),
    (85, f"{R7} {S} {T0} 0000000a 000000", ReadTableEntries(7, "s", "", 10, TableIteratorArgs())),
]


def unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_every_command_has_a_golden_case() -> None:
    assert {type(cmd) for cmd, _ in GOLDEN} == set(COMMANDS.values())


@pytest.mark.parametrize(("cmd", "frame"), GOLDEN, ids=[type(c).__name__ for c, _ in GOLDEN])
def test_encode_matches_golden_bytes(cmd: WireCommand, frame: str) -> None:
    assert encode(cmd).hex() == unhex(frame).hex()


@pytest.mark.parametrize(("cmd", "frame"), GOLDEN, ids=[type(c).__name__ for c, _ in GOLDEN])
def test_decode_golden_bytes(cmd: WireCommand, frame: str) -> None:
    raw = unhex(frame)
    type_code = int.from_bytes(raw[:4], "big", signed=True)
    assert int.from_bytes(raw[4:8], "big") == len(raw) - 8
    assert decode(type_code, raw[8:]) == cmd
    if cmd.LAYOUT and cmd.LAYOUT[-1][1] is not WireType.REST:
        assert decode(type_code, raw[8:] + b"trailing") == cmd


@pytest.mark.parametrize(
    ("type_code", "payload", "expected"), OPTIONAL_ABSENT, ids=[type(c).__name__ for _, _, c in OPTIONAL_ABSENT]
)
def test_decode_with_optional_fields_absent(type_code: int, payload: str, expected: WireCommand) -> None:
    assert decode(type_code, unhex(payload)) == expected


@pytest.mark.parametrize(("cmd", "frame"), GOLDEN, ids=[type(c).__name__ for c, _ in GOLDEN])
def test_every_prefix_raises_protocol_error_or_keeps_mandatory_fields(cmd: WireCommand, frame: str) -> None:
    """A cut inside a mandatory field raises ProtocolError; a cut among optional ones keeps the mandatory values."""
    payload = unhex(frame)[8:]
    elastic = (WireType.REST, WireType.ITERATOR_ARGS)
    mandatory = [name for name, spec in cmd.LAYOUT if not isinstance(spec, Opt) and spec not in elastic]
    for size in range(len(payload)):
        try:
            got = decode(cmd.TYPE, payload[:size])
        except ProtocolError:
            continue
        assert [getattr(got, n) for n in mandatory] == [getattr(cmd, n) for n in mandatory]


def test_unknown_and_event_type_codes_raise() -> None:
    for code in (0, 6, 72, 73, 101, -7, 2**31 - 1):
        with pytest.raises(ProtocolError):
            decode(code, b"")


def test_conditional_append_requires_event_type_zero() -> None:
    payload = unhex(f"{W} 0000000000000005 000000000000000a 00000001 00000002 7879 {R7}")
    with pytest.raises(ProtocolError, match="type 1"):
        decode(ConditionalAppend.TYPE, payload)


def test_bad_lengths_raise() -> None:
    with pytest.raises(ProtocolError):
        decode(AppendBlockEnd.TYPE, unhex(f"{W} 00000002 ffffffff 00000001 0000000000000005 {R7}"))
    with pytest.raises(ProtocolError):
        decode(TableEntriesUpdated.TYPE, unhex(f"{R7} 7fffffff 0000000000000003"))
    with pytest.raises(ProtocolError):
        decode(SegmentRead.TYPE, unhex(f"{S} 000000000000000a 01 00 00000100 7879 {R7}"))


def test_strings_decode_java_modified_utf8() -> None:
    nul = "0004 61 c080 62"
    assert decode(SegmentCreated.TYPE, unhex(f"{R7} {nul}")) == SegmentCreated(7, "a\0b")
    clef = "0006 eda0b4 edb49e"  # U+1D11E as a surrogate pair, each half 3 bytes
    assert decode(SegmentCreated.TYPE, unhex(f"{R7} {clef}")) == SegmentCreated(7, "\U0001d11e")
    with pytest.raises(ProtocolError):
        decode(SegmentCreated.TYPE, unhex(f"{R7} 0001 ff"))


def test_bool_reads_any_nonzero_as_true_and_writes_one() -> None:
    cmd = decode(SegmentAttributeUpdated.TYPE, unhex(f"{R7} 07"))
    assert cmd == SegmentAttributeUpdated(7, True)
    assert encode(cmd).endswith(b"\x01")


def test_encode_rejects_over_long_strings_and_frames() -> None:
    with pytest.raises(ProtocolError):
        encode(SegmentCreated(7, "x" * 70000))
    with pytest.raises(ProtocolError):
        encode(Padding(bytes(0x00FFFFFF)))
