"""Split a TCP byte stream into Pravega frames: ``i32 type, i32 length, payload``.

Sans-IO: bytes go in, ``(type, payload)`` pairs come out. Payloads are memoryviews over immutable
``bytes`` objects (the fed data itself when a frame arrives whole, else one join of the pieces), so
they stay valid after later feeds. A partial frame is kept as a list of pieces and joined once,
when its last byte arrives. Invariant: a frame never exceeds ``MAX_FRAME`` bytes (header included);
a negative or over-long length raises :class:`ProtocolError`, after which the decoder is unusable
and the connection must close.
"""

from __future__ import annotations

import struct

from anabranch.errors import ProtocolError

HEADER = struct.Struct(">ii")
HEADER_SIZE = HEADER.size
MAX_FRAME = 0x00FFFFFF
"""Netty's maxFrameLength on the Java server: header + payload <= 16 777 215 bytes."""


def check_length(type_code: int, length: int) -> None:
    if length < 0:
        raise ProtocolError(f"frame of type {type_code} declares a negative payload length {length}")
    if length + HEADER_SIZE > MAX_FRAME:
        raise ProtocolError(
            f"frame of type {type_code} declares a {length}-byte payload; frames are limited to {MAX_FRAME} bytes"
        )


class BadFrameError(ProtocolError):
    """A frame header with a bad length; ``frames_before`` are the whole frames that preceded it."""

    def __init__(self, message: str, frames_before: list[tuple[int, memoryview]]) -> None:
        super().__init__(message)
        self.frames_before = frames_before


class FrameDecoder:
    """Incremental frame splitter for one connection (one direction)."""

    __slots__ = ("_need", "_pending", "_pieces")

    def __init__(self) -> None:
        self._pieces: list[bytes | memoryview] = []
        self._pending = 0
        self._need = HEADER_SIZE

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back."""
        return self._pending

    def feed(self, data: bytes) -> list[tuple[int, memoryview]]:
        """Add bytes from the stream; return every frame they complete, in order."""
        if type(data) is not bytes:
            data = bytes(data)
        if self._pending + len(data) < self._need:
            if data:
                self._pieces.append(data)
                self._pending += len(data)
            return []
        if self._pieces:
            self._pieces.append(data)
            buf = memoryview(b"".join(self._pieces))
            self._pieces = []
        else:
            buf = memoryview(data)
        frames: list[tuple[int, memoryview]] = []
        pos = 0
        end = len(buf)
        unpack = HEADER.unpack_from
        while end - pos >= HEADER_SIZE:
            type_code, length = unpack(buf, pos)
            try:
                check_length(type_code, length)
            except ProtocolError as exc:
                raise BadFrameError(str(exc), frames) from exc
            stop = pos + HEADER_SIZE + length
            if stop > end:
                break
            frames.append((type_code, buf[pos + HEADER_SIZE : stop]))
            pos = stop
        rest = end - pos
        if rest:
            self._pieces.append(buf[pos:])
            if rest >= HEADER_SIZE:
                self._need = HEADER_SIZE + HEADER.unpack_from(buf, pos)[1]
            else:
                self._need = HEADER_SIZE
        else:
            self._need = HEADER_SIZE
        self._pending = rest
        return frames
