"""Split a TCP byte stream into Pravega frames: ``i32 type, i32 length, payload``.

Sans-IO: bytes go in, ``(type, payload)`` pairs come out. Payloads are memoryviews over immutable
``bytes`` objects (the fed data itself when a frame arrives whole, else one join of the pieces), so
they stay valid after later feeds. A partial frame is kept as a list of pieces and joined once,
when its last byte arrives. Invariant: a frame never exceeds ``MAX_FRAME`` bytes (header included);
a negative or over-long length raises :class:`ProtocolError`, after which the decoder is unusable
and the connection must close.

:class:`FrameReceiver` splits the same stream without the copies, for ``asyncio.BufferedProtocol``: the
socket reads straight into its buffers (``get_buffer``, then ``frames_received``). Small frames are views of a
scratch buffer that is never overwritten once handed out (a full one is replaced, not reused, and one whose
frames were all handed out is let go, so an idle connection holds no buffer); a frame of at least ``large_frame``
bytes gets a buffer of its own as soon as its header arrives, the bytes already received
are copied into it once, and the socket reads the rest of it directly there. An append block thus costs one
copy (the kernel's) instead of a ``bytes`` per receive plus a join.
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
        while end - pos >= HEADER_SIZE:
            type_code, length = _checked_header(buf, pos, frames)
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


def _checked_header(buffer: bytes | bytearray | memoryview, pos: int,
                    frames: list[tuple[int, memoryview]]) -> tuple[int, int]:
    """The (type, length) of the frame header at ``pos``; a length the type does not allow raises
    ``BadFrameError`` carrying the ``frames`` completed before it."""
    type_code, length = HEADER.unpack_from(buffer, pos)
    try:
        check_length(type_code, length)
    except ProtocolError as exc:
        raise BadFrameError(str(exc), frames) from exc
    return type_code, length


SCRATCH_SIZE = 64 * 1024
"""The scratch buffer of one connection: small frames, and the first bytes of a large one (copied once into the
frame's own buffer)."""
LARGE_FRAME = 32 * 1024


class FrameReceiver:
    """Incremental frame splitter that owns the receive buffers (one connection, one direction).

    Call :meth:`get_buffer`, receive at most its length into it, then :meth:`frames_received` with the count.
    Frames come out as read-only memoryviews that stay valid for good (nothing handed out is written again).
    """

    __slots__ = ("_end", "_exported", "_filled", "_frame", "_frame_type", "_large_frame", "_scratch",
                 "_scratch_size", "_start")

    def __init__(self, *, scratch_size: int = SCRATCH_SIZE, large_frame: int = LARGE_FRAME) -> None:
        if not 0 < large_frame <= scratch_size - HEADER_SIZE:
            raise ValueError(f"large_frame must be in 1..{scratch_size - HEADER_SIZE}, got {large_frame}")
        self._scratch_size = scratch_size
        self._large_frame = large_frame
        self._scratch = bytearray()
        self._start = 0
        """The first scratch byte not yet part of a returned frame."""
        self._end = 0
        """The end of the received bytes in the scratch buffer."""
        self._exported = False
        """Whether views of the current scratch buffer were handed out (then it is never written below ``_end``)."""
        self._frame: bytearray | None = None
        self._frame_type = 0
        self._filled = 0

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back."""
        return (self._end - self._start) + (self._filled if self._frame is not None else 0)

    def get_buffer(self) -> memoryview:
        """Where the next received bytes go (never empty)."""
        frame = self._frame
        if frame is not None:
            return memoryview(frame)[self._filled :]
        if self._end >= len(self._scratch):
            self._renew_scratch()
        return memoryview(self._scratch)[self._end :]

    def _renew_scratch(self) -> None:
        """A fresh scratch buffer holding the incomplete bytes (less than a small frame) of the old one."""
        pending = self._end - self._start
        if self._exported or not self._scratch:
            fresh = bytearray(self._scratch_size)
            fresh[:pending] = self._scratch[self._start : self._end]
            self._scratch = fresh
            self._exported = False
        else:
            self._scratch[:pending] = self._scratch[self._start : self._end]
        self._start, self._end = 0, pending

    def frames_received(self, nbytes: int) -> list[tuple[int, memoryview]]:
        """``nbytes`` were received into the last :meth:`get_buffer`; return every frame they complete."""
        frame = self._frame
        if frame is not None:
            self._filled += nbytes
            if self._filled < len(frame):
                return []
            self._frame = None
            return [(self._frame_type, memoryview(frame).toreadonly())]
        self._end += nbytes
        return self._split()

    def _split(self) -> list[tuple[int, memoryview]]:
        scratch = self._scratch
        view: memoryview | None = None
        frames: list[tuple[int, memoryview]] = []
        pos, end = self._start, self._end
        while end - pos >= HEADER_SIZE:
            type_code, length = _checked_header(scratch, pos, frames)
            stop = pos + HEADER_SIZE + length
            if stop > end:
                if length >= self._large_frame:
                    have = end - pos - HEADER_SIZE
                    frame = self._frame = bytearray(length)
                    frame[:have] = scratch[pos + HEADER_SIZE : end]
                    self._frame_type, self._filled = type_code, have
                    pos = end
                break
            if view is None:
                view = memoryview(scratch).toreadonly()
                self._exported = True
            frames.append((type_code, view[pos + HEADER_SIZE : stop]))
            pos = stop
        self._start = pos
        if pos == end:
            if self._exported:
                self._scratch, self._exported = bytearray(), False  # its views live on; nothing else needs it
            self._start = self._end = 0
        return frames
