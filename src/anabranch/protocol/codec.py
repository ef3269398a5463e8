"""The wire codec: commands to frames and frames to commands, driven by each command's ``LAYOUT``.

Sans-IO and stateless except for :class:`CommandDecoder`. At import, every command class in
:mod:`anabranch.protocol.commands` gets a compiled plan: consecutive fixed-size fields share one
precompiled ``struct.Struct``; variable fields use :mod:`anabranch.protocol.codec_fields`. The hot
commands (AppendBlockEnd, DataAppended, ReadSegment, SegmentRead) have hand-written fast paths that
produce exactly the bytes of the generic plan.

Invariants: ``encode`` always writes every field, optional ones included (Rust decodes strictly);
``decode`` reads an optional field only if the frame has bytes left for it (else its default),
ignores trailing bytes, and raises :class:`ProtocolError` for anything malformed. Decoded byte
fields are ``bytes``.
"""

from __future__ import annotations

import dataclasses
import struct
import uuid
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from anabranch.errors import ProtocolError
from anabranch.protocol import commands
from anabranch.protocol.codec_fields import VARIABLE, read_utf, write_utf
from anabranch.protocol.commands import (
    AppendBlockEnd,
    DataAppended,
    ReadSegment,
    SegmentRead,
    WireCommand,
)
from anabranch.protocol.framing import HEADER, MAX_FRAME, FrameDecoder
from anabranch.protocol.wiretypes import Opt, WireType

__all__ = [
    "COMMANDS",
    "CommandDecoder",
    "FrameDecoder",
    "decode",
    "encode",
    "encode_append_block_end",
    "parse_append_block_end",
    "uuid_from_bytes",
]

Encoder = Callable[[Any], bytes]
Decoder = Callable[[memoryview], WireCommand]
_Step = Callable[[Any, list[bytes]], None]
_ReadStep = Callable[[memoryview, int, int, list[Any]], int]

_FIXED = {WireType.I8: "b", WireType.I32: "i", WireType.I64: "q", WireType.BOOL: "?", WireType.UUID: "16s"}

COMMANDS: dict[int, type[WireCommand]] = {
    cls.TYPE: cls
    for cls in vars(commands).values()
    if isinstance(cls, type) and issubclass(cls, WireCommand) and "TYPE" in vars(cls)
}
"""Every command class by its frame type code."""


_UUIDS: dict[bytes, uuid.UUID] = {}
_UUID_CACHE_SIZE = 4096


def uuid_from_bytes(raw: bytes) -> uuid.UUID:
    """UUID from 16 bytes, memoized: a connection sees the same few writer ids over and over."""
    value = _UUIDS.get(raw)
    if value is None:
        if len(_UUIDS) >= _UUID_CACHE_SIZE:
            _UUIDS.clear()
        value = _UUIDS[raw] = uuid.UUID(bytes=raw)
    return value


def _field_type(spec: WireType | Opt) -> WireType:
    return spec.type if isinstance(spec, Opt) else spec


@dataclasses.dataclass(slots=True)
class _Group:
    """Consecutive fixed-size fields (one struct), or a single variable-size field."""

    names: list[str]
    kinds: list[WireType]

    @property
    def fixed(self) -> bool:
        return self.kinds[0] in _FIXED


def _groups(layout: tuple[tuple[str, Any], ...]) -> list[_Group]:
    groups: list[_Group] = []
    for name, spec in layout:
        kind = _field_type(spec)
        if kind in _FIXED and groups and groups[-1].fixed:
            groups[-1].names.append(name)
            groups[-1].kinds.append(kind)
        else:
            groups.append(_Group([name], [kind]))
    return groups


def _fixed_writer(names: list[str], kinds: list[WireType]) -> _Step:
    packer = struct.Struct(">" + "".join(_FIXED[k] for k in kinds)).pack
    uuids = [i for i, k in enumerate(kinds) if k is WireType.UUID]
    get = attrgetter(*names)
    single = len(names) == 1

    def write(cmd: Any, out: list[bytes]) -> None:
        values: list[Any] = [get(cmd)] if single else list(get(cmd))
        for i in uuids:
            values[i] = values[i].bytes
        out.append(packer(*values))

    return write


def _variable_writer(name: str, kind: WireType) -> _Step:
    get = attrgetter(name)
    write_value = VARIABLE[kind][1]

    def write(cmd: Any, out: list[bytes]) -> None:
        write_value(get(cmd), out)

    return write


def _compile_encoder(cls: type[WireCommand]) -> Encoder:
    steps: list[_Step] = []
    for group in _groups(cls.LAYOUT):
        if group.fixed:
            steps.append(_fixed_writer(group.names, group.kinds))
        else:
            steps.append(_variable_writer(group.names[0], group.kinds[0]))
    type_code = cls.TYPE

    def encode_command(cmd: Any) -> bytes:
        out: list[bytes] = [b""]
        for step in steps:
            step(cmd, out)
        out[0] = HEADER.pack(type_code, sum(map(len, out)))
        return b"".join(out)

    return encode_command


def _fixed_reader(kinds: list[WireType], what: str, default: Any = None, optional: bool = False) -> _ReadStep:
    unpacker = struct.Struct(">" + "".join(_FIXED[k] for k in kinds))
    size = unpacker.size
    uuids = [i for i, k in enumerate(kinds) if k is WireType.UUID]
    unpack = unpacker.unpack_from

    def read(buf: memoryview, pos: int, end: int, values: list[Any]) -> int:
        if end - pos < size:
            if optional:
                values.append(default)
                return pos
            raise ProtocolError(f"truncated payload: {what} needs {size} bytes at offset {pos}, only {end - pos} left")
        if uuids:
            got = list(unpack(buf, pos))
            for i in uuids:
                got[i] = uuid_from_bytes(got[i])
            values.extend(got)
        else:
            values.extend(unpack(buf, pos))
        return pos + size

    return read


def _variable_reader(kind: WireType, default: Any = None, optional: bool = False) -> _ReadStep:
    read_value = VARIABLE[kind][0]

    def read(buf: memoryview, pos: int, end: int, values: list[Any]) -> int:
        if optional and pos >= end:
            values.append(default)
            return pos
        value, pos = read_value(buf, pos, end)
        values.append(value)
        return pos

    return read


def _compile_decoder(cls: type[WireCommand]) -> Decoder:
    steps: list[_ReadStep] = []
    required = tuple((n, s) for n, s in cls.LAYOUT if not isinstance(s, Opt))
    for group in _groups(required):
        if group.fixed:
            steps.append(_fixed_reader(group.kinds, f"{cls.__name__}.{'/'.join(group.names)}"))
        else:
            steps.append(_variable_reader(group.kinds[0]))
    for name, spec in cls.LAYOUT:
        if isinstance(spec, Opt):
            if spec.type in _FIXED:
                steps.append(_fixed_reader([spec.type], f"{cls.__name__}.{name}", spec.default, True))
            else:
                steps.append(_variable_reader(spec.type, spec.default, True))

    def decode_command(payload: memoryview) -> WireCommand:
        values: list[Any] = []
        pos = 0
        end = len(payload)
        for step in steps:
            pos = step(payload, pos, end, values)
        return cls(*values)

    return decode_command


def _check_layout(cls: type[WireCommand]) -> None:
    names = [n for n, _ in cls.LAYOUT]
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if names != fields:
        raise TypeError(f"{cls.__name__}.LAYOUT {names} does not match its fields {fields}")
    seen_opt = False
    for name, spec in cls.LAYOUT:
        if seen_opt and not isinstance(spec, Opt):
            raise TypeError(f"{cls.__name__}.{name}: a required field follows an optional one")
        seen_opt = seen_opt or isinstance(spec, Opt)


# --- hand-written fast paths for the hot commands ------------------------------------------

_ABE_HEAD = struct.Struct(">ii16sii")
_ABE_TAIL = struct.Struct(">iqq")
_ABE_FIXED = 16 + 4 + 4 + 4 + 8 + 8
_ABE_PREFIX = struct.Struct(">16sii")
_ABE_SUFFIX = struct.Struct(">iq")
_I64 = struct.Struct(">q")
_DATA_APPENDED = struct.Struct(">ii16sqqqq")
_DATA_APPENDED_BODY = struct.Struct(">16sqqqq")
_OFFSET_LEN = struct.Struct(">qi")
_READ_HEAD = struct.Struct(">q??i")


def encode_append_block_end(
    writer_id: uuid.UUID,
    size_of_whole_events: int,
    data_parts: Sequence[bytes | memoryview],
    data_len: int,
    num_events: int,
    last_event_number: int,
    request_id: int,
) -> list[bytes | memoryview]:
    """An AppendBlockEnd frame as buffers for ``writelines``; the data parts are not copied."""
    length = _ABE_FIXED + data_len
    if length + HEADER.size > MAX_FRAME:
        raise ProtocolError(f"AppendBlockEnd of {data_len} data bytes exceeds the {MAX_FRAME}-byte frame limit")
    head = _ABE_HEAD.pack(AppendBlockEnd.TYPE, length, writer_id.bytes, size_of_whole_events, data_len)
    return [head, *data_parts, _ABE_TAIL.pack(num_events, last_event_number, request_id)]


def _encode_append_block_end(cmd: AppendBlockEnd) -> bytes:
    return b"".join(
        encode_append_block_end(
            cmd.writer_id,
            cmd.size_of_whole_events,
            (cmd.data,),
            len(cmd.data),
            cmd.num_events,
            cmd.last_event_number,
            cmd.request_id,
        )
    )


def parse_append_block_end(payload: memoryview) -> tuple[uuid.UUID, int, memoryview, int, int, int]:
    """AppendBlockEnd fields with ``data`` as a view into the payload (no copy): the server's hot path."""
    end = len(payload)
    if end < _ABE_FIXED - 8:
        raise ProtocolError(f"truncated payload: AppendBlockEnd needs at least {_ABE_FIXED - 8} bytes, got {end}")
    raw_id, size_of_whole_events, data_len = _ABE_PREFIX.unpack_from(payload, 0)
    if data_len < 0 or 24 + data_len + 12 > end:
        raise ProtocolError(f"AppendBlockEnd declares {data_len} data bytes but its payload has {end} bytes")
    data = payload[24 : 24 + data_len]
    pos = 24 + data_len
    num_events, last_event_number = _ABE_SUFFIX.unpack_from(payload, pos)
    pos += 12
    request_id = _I64.unpack_from(payload, pos)[0] if end - pos >= 8 else -1
    return uuid_from_bytes(raw_id), size_of_whole_events, data, num_events, last_event_number, request_id


def _decode_append_block_end(payload: memoryview) -> AppendBlockEnd:
    writer_id, size, data, num_events, last, request_id = parse_append_block_end(payload)
    return AppendBlockEnd(writer_id, size, bytes(data), num_events, last, request_id)


def _encode_data_appended(cmd: DataAppended) -> bytes:
    return _DATA_APPENDED.pack(
        DataAppended.TYPE,
        _DATA_APPENDED.size - HEADER.size,
        cmd.writer_id.bytes,
        cmd.event_number,
        cmd.previous_event_number,
        cmd.request_id,
        cmd.current_segment_write_offset,
    )


def _decode_data_appended(payload: memoryview) -> WireCommand:
    if len(payload) < _DATA_APPENDED_BODY.size:
        return _GENERIC_DECODERS[DataAppended.TYPE](payload)
    raw_id, event_number, previous, request_id, offset = _DATA_APPENDED_BODY.unpack_from(payload, 0)
    return DataAppended(uuid_from_bytes(raw_id), event_number, previous, request_id, offset)


def _encode_read_segment(cmd: ReadSegment) -> bytes:
    out: list[bytes] = [b""]
    write_utf(cmd.segment, out)
    out.append(_OFFSET_LEN.pack(cmd.offset, cmd.suggested_length))
    write_utf(cmd.delegation_token, out)
    out.append(_I64.pack(cmd.request_id))
    out[0] = HEADER.pack(ReadSegment.TYPE, sum(map(len, out)))
    return b"".join(out)


def _decode_read_segment(payload: memoryview) -> ReadSegment:
    end = len(payload)
    segment, pos = read_utf(payload, 0, end)
    if end - pos < 12:
        raise ProtocolError(f"truncated payload: ReadSegment offset/length need 12 bytes, only {end - pos} left")
    offset, suggested = _OFFSET_LEN.unpack_from(payload, pos)
    token, pos = read_utf(payload, pos + 12, end)
    request_id = _I64.unpack_from(payload, pos)[0] if end - pos >= 8 else -1
    return ReadSegment(segment, offset, suggested, token, request_id)


def encode_segment_read(segment: str, offset: int, at_tail: bool, end_of_segment: bool,
                        data_parts: Sequence[bytes | bytearray | memoryview], data_len: int,
                        request_id: int) -> list[bytes | bytearray | memoryview]:
    """A SegmentRead frame as buffers for ``writelines``; the data parts (views into the read index) are not
    copied."""
    out: list[bytes | bytearray | memoryview] = [b""]
    write_utf(segment, out)  # type: ignore[arg-type]
    out.append(_READ_HEAD.pack(offset, at_tail, end_of_segment, data_len))
    head = len(out[1]) + len(out[2]) + len(out[3])
    out.extend(data_parts)
    out.append(_I64.pack(request_id))
    length = head + data_len + 8
    if length + HEADER.size > MAX_FRAME:
        raise ProtocolError(f"SegmentRead of {data_len} data bytes exceeds the {MAX_FRAME}-byte frame limit")
    out[0] = HEADER.pack(SegmentRead.TYPE, length)
    return out


def _encode_segment_read(cmd: SegmentRead) -> bytes:
    return b"".join(encode_segment_read(cmd.segment, cmd.offset, cmd.at_tail, cmd.end_of_segment, (cmd.data,),
                                        len(cmd.data), cmd.request_id))


def _decode_segment_read(payload: memoryview) -> SegmentRead:
    end = len(payload)
    segment, pos = read_utf(payload, 0, end)
    if end - pos < _READ_HEAD.size:
        raise ProtocolError(f"truncated payload: SegmentRead needs {_READ_HEAD.size} header bytes at offset {pos}")
    offset, at_tail, end_of_segment, size = _READ_HEAD.unpack_from(payload, pos)
    pos += _READ_HEAD.size
    if size < 0 or pos + size > end:
        raise ProtocolError(f"SegmentRead declares {size} data bytes but only {end - pos} are left")
    data = bytes(payload[pos : pos + size])
    pos += size
    request_id = _I64.unpack_from(payload, pos)[0] if end - pos >= 8 else -1
    return SegmentRead(segment, offset, at_tail, end_of_segment, data, request_id)


for _cls in COMMANDS.values():
    _check_layout(_cls)

_GENERIC_ENCODERS: dict[type[WireCommand], Encoder] = {cls: _compile_encoder(cls) for cls in COMMANDS.values()}
_GENERIC_DECODERS: dict[int, Decoder] = {code: _compile_decoder(cls) for code, cls in COMMANDS.items()}
_ENCODERS: dict[type[WireCommand], Encoder] = {
    **_GENERIC_ENCODERS,
    AppendBlockEnd: _encode_append_block_end,
    DataAppended: _encode_data_appended,
    ReadSegment: _encode_read_segment,
    SegmentRead: _encode_segment_read,
}
_DECODERS: dict[int, Decoder] = {
    **_GENERIC_DECODERS,
    AppendBlockEnd.TYPE: _decode_append_block_end,
    DataAppended.TYPE: _decode_data_appended,
    ReadSegment.TYPE: _decode_read_segment,
    SegmentRead.TYPE: _decode_segment_read,
}


def encode(cmd: WireCommand) -> bytes:
    """The whole frame of ``cmd``: i32 type, i32 payload length, payload (every optional field written)."""
    try:
        frame = _ENCODERS[type(cmd)](cmd)
    except KeyError:
        raise ProtocolError(f"{type(cmd).__name__} is not a wire command") from None
    except (struct.error, AttributeError, TypeError) as exc:
        raise ProtocolError(f"cannot encode {cmd!r}: {exc}") from exc
    if len(frame) > MAX_FRAME:
        raise ProtocolError(f"{type(cmd).__name__} frame of {len(frame)} bytes exceeds the {MAX_FRAME}-byte limit")
    return frame


def decode(type_code: int, payload: bytes | memoryview) -> WireCommand:
    """The command in one frame's payload; raises ProtocolError if it is unknown, truncated or malformed."""
    decoder = _DECODERS.get(type_code)
    if decoder is None:
        if type_code == 0:
            raise ProtocolError("type 0 (Event) is only valid inside segment data, not as a frame")
        raise ProtocolError(f"unknown wire command type {type_code}")
    view = payload if isinstance(payload, memoryview) else memoryview(payload)
    try:
        return decoder(view)
    except struct.error as exc:
        raise ProtocolError(f"malformed {COMMANDS[type_code].__name__} payload: {exc}") from exc


class CommandDecoder:
    """A byte stream in, decoded commands out (FrameDecoder + decode), e.g. for clients."""

    __slots__ = ("_frames",)

    def __init__(self) -> None:
        self._frames = FrameDecoder()

    def feed(self, data: bytes) -> list[WireCommand]:
        return [decode(type_code, payload) for type_code, payload in self._frames.feed(data)]
