"""The chunk metadata of LTS segments and the journal operations that change it.

Owns ``ChunkRef``/``SegmentState`` (a segment is an ordered list of chunks, each covering ``[start, start + length)``
of the segment) and the pure, deterministic ``apply_ops`` used both live and when replaying the metadata journal,
plus the snapshot codec. A chunk holds its segment's bytes from chunk offset 0, except a *pack* member: a pack is one
chunk holding the first bytes of several new small segments back to back (``offset`` is where a member's bytes start
in it), so a thousand new stream tables cost one chunk file, not a thousand. ``PackRefs`` counts a pack's members: a
pack is released (deleted) only when its last member goes. Operations are plain lists so they serialize with CBOR:

- ``["create", seg]``, ``["seal", seg]``, ``["delete", seg]``
- ``["add", seg, chunk, start, length]``: a new last chunk; ``["add", seg, pack, start, length, offset]``: a new last
  chunk that is a pack member starting at ``offset`` in the pack
- ``["grow", seg, length]``: the last chunk now holds ``length`` bytes
- ``["truncate", seg, offset]``: start offset moves to ``offset``; chunks wholly below it are dropped
- ``["concat", target, source]``: source's chunks are relinked after target's; source disappears

Invariants: chunks are contiguous and end at ``length``; ``start_offset <= length``; no I/O here.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
from typing import Any

import cbor2

from anabranch.errors import DataCorruptionError
from anabranch.storage.cbor_stream import BREAK, MAP_START, items_until_break

Op = list[Any]


@dataclass(frozen=True, slots=True)
class ChunkRef:
    name: str
    start: int
    length: int
    offset: int | None = None
    """Where this segment's bytes start in a pack chunk; None for a chunk of its own (its bytes start at 0)."""

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def packed(self) -> bool:
        return self.offset is not None

    def position(self, segment_offset: int) -> int:
        """The chunk offset holding byte ``segment_offset`` of the segment."""
        return segment_offset - self.start + (self.offset or 0)

    def encode(self) -> list[Any]:
        return [self.name, self.start, self.length] if self.offset is None else [
            self.name, self.start, self.length, self.offset]


class PackRefs:
    """How many segments still reference each pack chunk, and one shared name string per pack (a pack's name would
    otherwise be held once per member after a replay)."""

    __slots__ = ("_names", "_refs")

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._refs: dict[str, int] = {}

    def add(self, name: str) -> str:
        """Count one more member of pack ``name``; returns the pack's shared name string."""
        shared = self._names.setdefault(name, name)
        self._refs[shared] = self._refs.get(shared, 0) + 1
        return shared

    def release(self, name: str) -> bool:
        """Count one member fewer; True once none is left (the pack chunk may be deleted)."""
        left = self._refs.get(name, 0) - 1
        if left > 0:
            self._refs[name] = left
            return False
        self._refs.pop(name, None)
        self._names.pop(name, None)
        return True

    @classmethod
    def of(cls, segments: dict[str, SegmentState]) -> PackRefs:
        """The counts of ``segments``' pack members, their chunks re-pointed at shared name strings."""
        packs = cls()
        for state in segments.values():
            if any(chunk.packed for chunk in state.chunks):
                state.chunks = tuple(ChunkRef(packs.add(c.name), c.start, c.length, c.offset) if c.packed else c
                                     for c in state.chunks)
        return packs


class SegmentState:
    """One LTS segment's chunks and lengths. Every segment in LTS has one in memory for the life of the process, so
    the usual single chunk is held as itself rather than in a tuple of one (``chunks`` always reads as a tuple)."""

    __slots__ = ("_chunks", "length", "sealed", "start_offset", "tail_appendable")

    def __init__(self, length: int = 0, start_offset: int = 0, sealed: bool = False,
                 chunks: tuple[ChunkRef, ...] = (), tail_appendable: bool = False) -> None:
        self.length = length
        self.start_offset = start_offset
        self.sealed = sealed
        self.chunks = chunks
        self.tail_appendable = tail_appendable
        """Not journaled: this instance wrote the last chunk, so its real length is known and it may be appended
        to."""

    @property
    def chunks(self) -> tuple[ChunkRef, ...]:
        held = self._chunks
        return (held,) if isinstance(held, ChunkRef) else held

    @chunks.setter
    def chunks(self, chunks: tuple[ChunkRef, ...]) -> None:
        self._chunks: ChunkRef | tuple[ChunkRef, ...] = chunks[0] if len(chunks) == 1 else tuple(chunks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SegmentState):
            return NotImplemented
        return (self.length, self.start_offset, self.sealed, self.chunks, self.tail_appendable) == (
            other.length, other.start_offset, other.sealed, other.chunks, other.tail_appendable)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"SegmentState(length={self.length}, start_offset={self.start_offset}, sealed={self.sealed}, "
                f"chunks={self.chunks!r}, tail_appendable={self.tail_appendable})")

    def chunk_index_at(self, offset: int) -> int:
        """Index of the chunk holding byte ``offset`` (which must be covered by a chunk)."""
        return bisect.bisect_right(self.chunks, offset, key=lambda chunk: chunk.start) - 1


def apply_ops(segments: dict[str, SegmentState], packs: PackRefs, ops: list[Op]) -> list[str]:
    """Apply ``ops`` in order; return names of chunks that are no longer referenced (to delete)."""
    released: list[str] = []

    def release(chunks: tuple[ChunkRef, ...]) -> None:
        released.extend(chunk.name for chunk in chunks if not chunk.packed or packs.release(chunk.name))

    for op in ops:
        kind = op[0]
        try:
            if kind == "create":
                segments[op[1]] = SegmentState()
            elif kind == "add":
                state = segments[op[1]]
                if len(op) > 5:
                    state.chunks += (ChunkRef(packs.add(op[2]), op[3], op[4], op[5]),)
                else:
                    state.chunks += (ChunkRef(op[2], op[3], op[4]),)
                state.length = op[3] + op[4] if op[3] else op[4]  # the same int object as the chunk's length
            elif kind == "grow":
                state = segments[op[1]]
                last = state.chunks[-1]
                if last.packed:
                    raise DataCorruptionError(f"LTS metadata operation {op!r} grows a pack member")
                state.chunks = (*state.chunks[:-1], ChunkRef(last.name, last.start, op[2]))
                state.length = last.start + op[2]
            elif kind == "seal":
                segments[op[1]].sealed = True
            elif kind == "truncate":
                state = segments[op[1]]
                state.start_offset = op[2]
                keep = tuple(chunk for chunk in state.chunks if chunk.end > op[2])
                release(state.chunks[: len(state.chunks) - len(keep)])
                state.chunks = keep
            elif kind == "concat":
                target, source = segments[op[1]], segments.pop(op[2])
                base = target.length
                target.chunks += tuple(ChunkRef(c.name, base + c.start, c.length, c.offset) for c in source.chunks)
                target.length = base + source.length
            elif kind == "delete":
                release(segments.pop(op[1]).chunks)
            else:
                raise DataCorruptionError(f"unknown LTS metadata operation {kind!r}")
        except (KeyError, IndexError, TypeError) as error:
            raise DataCorruptionError(f"LTS metadata operation {op!r} does not fit the current metadata") from error
    return released


def encode_snapshot(segments: dict[str, SegmentState]) -> memoryview:
    """The snapshot's CBOR: an indefinite-length map of segment name to ``[length, start offset, sealed, chunks]``,
    encoded a segment at a time (``cbor_stream``), as a view of the encoder's buffer (no copy of it)."""
    out = io.BytesIO()
    encoder = cbor2.CBOREncoder(out)
    out.write(MAP_START)
    for name, s in segments.items():
        encoder.encode(name)
        encoder.encode([s.length, s.start_offset, s.sealed, [c.encode() for c in s.chunks]])
    out.write(BREAK)
    return out.getbuffer()


def decode_snapshot(data: bytes | memoryview) -> dict[str, SegmentState]:
    """Read a snapshot a segment at a time (one written as a definite-length map, as older versions did, is decoded
    whole)."""
    try:
        stream = io.BytesIO(data)
        decoder = cbor2.CBORDecoder(stream)
        if stream.read(1) != MAP_START:
            return {name: _state_of(row) for name, row in cbor2.loads(data).items()}
        items = items_until_break(stream, decoder, "LTS metadata snapshot")
        segments = {name: _state_of(next(items)) for name in items}
        if stream.read(1):
            raise DataCorruptionError("an LTS metadata snapshot has bytes after its end")
        return segments
    except (AttributeError, TypeError, ValueError, StopIteration, cbor2.CBORDecodeError) as error:
        raise DataCorruptionError("an LTS metadata snapshot has an unexpected structure") from error


def _state_of(row: Any) -> SegmentState:
    length, start, sealed, chunks = row
    return SegmentState(length, start, sealed, tuple(ChunkRef(*chunk) for chunk in chunks))
