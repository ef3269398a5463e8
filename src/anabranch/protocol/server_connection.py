"""The segment store's side of one client connection, sans-IO: bytes in, requests and appends out.

Owns the per-connection append state of spec §1.7 (Java ``AppendDecoder``): which writers have set
up appends to which segment, the last event number seen per writer, and the AppendBlock awaiting
its AppendBlockEnd. Both client styles become one :class:`Append` per block: Java's AppendBlock
(whole events, then one embedded PartialEvent or Padding) + AppendBlockEnd, and Rust's lone
AppendBlockEnd; ConditionalAppend and ConditionalBlockEnd become an Append with an expected offset.
Append data is never parsed per event and is a view into the received bytes whenever it arrives in
one piece. Every violation raises :class:`ProtocolError`; the server must then close the
connection without a reply. It knows nothing about segments beyond their names.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from anabranch.errors import ProtocolError
from anabranch.protocol.codec import COMMANDS, decode, parse_append_block_end, uuid_from_bytes
from anabranch.protocol.commands import (
    NULL_ATTRIBUTE_VALUE,
    AppendBlock,
    AppendBlockEnd,
    ConditionalAppend,
    ConditionalBlockEnd,
    FlushToStorage,
    ListStorageChunks,
    Padding,
    PartialEvent,
    Request,
    SetupAppend,
)
from anabranch.protocol.framing import HEADER, BadFrameError, FrameDecoder, FrameReceiver

_CONDITIONAL_HEAD = struct.Struct(">16sqq")
_I32I32 = struct.Struct(">ii")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_ADMIN_ONLY = (FlushToStorage.TYPE, ListStorageChunks.TYPE)


@dataclass(frozen=True, slots=True)
class Append:
    """One block of appended data from one writer: store ``data`` verbatim, atomically."""

    writer_id: uuid.UUID
    segment: str
    event_number: int
    """The number of the block's last event."""
    event_count: int
    data: bytes | memoryview
    request_id: int
    expected_offset: int | None
    """Store only if the segment's length equals this; None for an unconditional append."""


class BadInputError(ProtocolError):
    """A protocol violation, with the well-formed items that came before it in the same data."""

    def __init__(self, message: str, items_before: list[Request | Append]) -> None:
        super().__init__(message)
        self.items_before = items_before


class ServerConnection:
    """Append reassembly and request decoding for one connection (feed it every byte received)."""

    __slots__ = ("_block", "_frames", "_last_event", "_receiver", "_writers")

    def __init__(self) -> None:
        self._frames = FrameDecoder()
        self._receiver = FrameReceiver()
        self._writers: dict[uuid.UUID, str] = {}
        self._last_event: dict[uuid.UUID, int] = {}
        self._block: tuple[uuid.UUID, memoryview] | None = None

    def receive_data(self, data: bytes) -> list[Request | Append]:
        """Decode the requests and appends that ``data`` completes.

        Raises ``BadInputError`` (a ProtocolError) on a violation; it carries the items decoded before the
        violation, which the server still answers (e.g. the Hello that precedes a bad frame) before closing.
        """
        bad_frame: BadFrameError | None = None
        try:
            frames = self._frames.feed(data)
        except BadFrameError as exc:
            frames, bad_frame = exc.frames_before, exc
        return self._decode(frames, bad_frame)

    def get_buffer(self) -> memoryview:
        """Where the next received bytes go (``asyncio.BufferedProtocol``; do not mix with ``receive_data``)."""
        return self._receiver.get_buffer()

    def buffer_updated(self, nbytes: int) -> list[Request | Append]:
        """``nbytes`` were received into :meth:`get_buffer`: the requests and appends they complete (no copies:
        append data are views of the receive buffers). Raises ``BadInputError`` as ``receive_data`` does."""
        bad_frame: BadFrameError | None = None
        try:
            frames = self._receiver.frames_received(nbytes)
        except BadFrameError as exc:
            frames, bad_frame = exc.frames_before, exc
        return self._decode(frames, bad_frame)

    def _decode(self, frames: list[tuple[int, memoryview]], bad_frame: BadFrameError | None) -> list[Request | Append]:
        out: list[Request | Append] = []
        try:
            self._decode_into(frames, out)
        except ProtocolError as exc:
            raise BadInputError(str(exc), out) from exc
        if bad_frame is not None:
            raise BadInputError(str(bad_frame), out) from bad_frame
        return out

    def _decode_into(self, frames: list[tuple[int, memoryview]], out: list[Request | Append]) -> None:
        for type_code, payload in frames:
            if self._block is not None and type_code != AppendBlockEnd.TYPE:
                raise ProtocolError(f"expected AppendBlockEnd after AppendBlock, got frame type {type_code}")
            if type_code == AppendBlockEnd.TYPE:
                out.append(self._block_end(payload))
            elif type_code == AppendBlock.TYPE:
                self._block_start(payload)
            elif type_code == ConditionalAppend.TYPE:
                out.append(self._conditional_append(payload))
            elif type_code == ConditionalBlockEnd.TYPE:
                out.append(self._conditional_block_end(payload))
            else:
                out.append(self._request(type_code, payload))

    def remove_writer(self, writer_id: uuid.UUID) -> None:
        """Forget a writer (after an append error): its next append is a protocol error until it sets up again."""
        self._writers.pop(writer_id, None)
        self._last_event.pop(writer_id, None)

    def writer_segment(self, writer_id: uuid.UUID) -> str | None:
        """The segment a writer set up appends to on this connection, if any."""
        return self._writers.get(writer_id)

    def _request(self, type_code: int, payload: memoryview) -> Request:
        cls = COMMANDS.get(type_code)
        if cls is not None and type_code in _ADMIN_ONLY:
            raise ProtocolError(f"{cls.__name__} is only accepted on the admin port")
        if cls is not None and not cls.IS_REQUEST:
            raise ProtocolError(f"{cls.__name__} (type {type_code}) is not a request a client may send")
        cmd = decode(type_code, payload)
        assert isinstance(cmd, Request)
        if isinstance(cmd, SetupAppend):
            self._writers[cmd.writer_id] = cmd.segment
            self._last_event[cmd.writer_id] = NULL_ATTRIBUTE_VALUE
        return cmd

    def _segment_of(self, writer_id: uuid.UUID, what: str) -> str:
        segment = self._writers.get(writer_id)
        if segment is None:
            raise ProtocolError(f"{what} for writer {writer_id}, which has not set up appends on this connection")
        return segment

    def _check_event_number(self, writer_id: uuid.UUID, event_number: int, what: str) -> None:
        last = self._last_event[writer_id]
        if event_number < last:
            raise ProtocolError(f"{what} from writer {writer_id} has event number {event_number} below {last}")
        self._last_event[writer_id] = event_number

    def _block_start(self, payload: memoryview) -> None:
        if len(payload) < 16:
            raise ProtocolError(f"truncated payload: AppendBlock needs a 16-byte writer id, got {len(payload)} bytes")
        writer_id = uuid_from_bytes(bytes(payload[:16]))
        self._segment_of(writer_id, "AppendBlock")
        self._block = (writer_id, payload[16:])

    def _block_end(self, payload: memoryview) -> Append:
        writer_id, size, end_data, num_events, last_event_number, request_id = parse_append_block_end(payload)
        segment = self._segment_of(writer_id, "AppendBlockEnd")
        if num_events <= 0:
            raise ProtocolError(f"AppendBlockEnd from writer {writer_id} has {num_events} events; must be > 0")
        self._check_event_number(writer_id, last_event_number, "AppendBlockEnd")
        data: bytes | memoryview = end_data
        if self._block is not None:
            data = self._join_block(writer_id, size, end_data)
            self._block = None
        return Append(writer_id, segment, last_event_number, num_events, data, request_id, None)

    def _join_block(self, writer_id: uuid.UUID, size: int, end_data: memoryview) -> bytes | memoryview:
        assert self._block is not None
        block_writer, block = self._block
        if block_writer != writer_id:
            raise ProtocolError(f"AppendBlockEnd for writer {writer_id} follows an AppendBlock of {block_writer}")
        if not 0 <= size <= len(block):
            raise ProtocolError(f"sizeOfWholeEvents {size} is outside the {len(block)}-byte AppendBlock")
        whole = block[:size]
        rest = block[size:]
        if not rest:
            return b"".join((whole, end_data)) if end_data else whole
        if len(rest) < HEADER.size:
            raise ProtocolError(f"{len(rest)} bytes after the whole events of an AppendBlock cannot hold a command")
        embedded_type, length = _I32I32.unpack_from(rest, 0)
        if length != len(rest) - HEADER.size:
            raise ProtocolError(
                f"command embedded in an AppendBlock declares {length} bytes but {len(rest) - HEADER.size} remain"
            )
        if embedded_type == PartialEvent.TYPE:
            return b"".join((whole, rest[HEADER.size :], end_data))
        if embedded_type == Padding.TYPE:
            if end_data:
                raise ProtocolError("AppendBlockEnd after a Padded AppendBlock must carry no data")
            return whole
        raise ProtocolError(f"AppendBlock embeds command type {embedded_type}; only PartialEvent or Padding may")

    def _conditional_append(self, payload: memoryview) -> Append:
        """ConditionalAppend: the stored data is the embedded Event with its 8-byte header."""
        end = len(payload)
        head = _CONDITIONAL_HEAD.size
        if end < head + HEADER.size:
            raise ProtocolError(f"truncated payload: ConditionalAppend needs {head + HEADER.size} bytes, got {end}")
        raw_id, event_number, expected_offset = _CONDITIONAL_HEAD.unpack_from(payload, 0)
        event_type, length = _I32I32.unpack_from(payload, head)
        if event_type != 0:
            raise ProtocolError(f"ConditionalAppend carries an event of type {event_type}, expected 0")
        stop = head + HEADER.size + length
        if length < 0 or stop > end:
            raise ProtocolError(f"ConditionalAppend event declares {length} bytes but {end - head - 8} remain")
        request_id = _I64.unpack_from(payload, stop)[0] if end - stop >= 8 else -1
        writer_id = uuid_from_bytes(raw_id)
        segment = self._segment_of(writer_id, "ConditionalAppend")
        self._check_event_number(writer_id, event_number, "ConditionalAppend")
        return Append(writer_id, segment, event_number, 1, payload[head:stop], request_id, expected_offset)

    def _conditional_block_end(self, payload: memoryview) -> Append:
        """ConditionalBlockEnd: the data is stored raw (no header added)."""
        end = len(payload)
        head = _CONDITIONAL_HEAD.size
        if end < head + 4:
            raise ProtocolError(f"truncated payload: ConditionalBlockEnd needs {head + 4} bytes, got {end}")
        raw_id, event_number, expected_offset = _CONDITIONAL_HEAD.unpack_from(payload, 0)
        length = _I32.unpack_from(payload, head)[0]
        start = head + 4
        if length < 0 or start + length + 8 > end:
            raise ProtocolError(f"ConditionalBlockEnd declares {length} data bytes but its payload has {end} bytes")
        request_id = _I64.unpack_from(payload, start + length)[0]
        writer_id = uuid_from_bytes(raw_id)
        segment = self._segment_of(writer_id, "ConditionalBlockEnd")
        self._check_event_number(writer_id, event_number, "ConditionalBlockEnd")
        data = payload[start : start + length]
        return Append(writer_id, segment, event_number, 1, data, request_id, expected_offset)
