"""Routing keys → the key space [0, 1), and the key → segment map of a stream.

The hash is the official clients' (Java ``HashHelper``, Rust ``StreamSegments``): murmur3 x64
128-bit, seed 1741865571 (Java's ``"EventRouter".hashCode()``), over the key's UTF-16
little-endian code units (Rust pads non-ASCII keys with zero units, see ``hash_routing_key``);
the first 64-bit half becomes a double in [0, 1) by taking its top
52 bits as the mantissa of a number in [1, 2) and subtracting 1. A key selects the segment with
the smallest upper bound ≥ its position (``ceilingEntry``), exactly as both clients do, so our
writers and the official ones put the same key in the same segment.
"""

from __future__ import annotations

import bisect
import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import mmh3

from anabranch.model.names import qualified_segment_name

ROUTING_SEED = 1741865571
_MANTISSA = 0x000F_FFFF_FFFF_FFFF
_ONE = 0x3FF0_0000_0000_0000
_DOUBLE = struct.Struct(">d")
_U64 = struct.Struct(">Q")


def u64_to_fraction(value: int) -> float:
    """The top 52 bits of ``value`` as a double in [0, 1)."""
    return _DOUBLE.unpack(_U64.pack(_ONE + ((value >> 12) & _MANTISSA)))[0] - 1.0


def hash_routing_key(key: str) -> float:
    """The position of ``key`` in [0, 1), identical to the Rust client (and the official Python client).

    The Rust client hashes a buffer of ``len(utf8(key))`` UTF-16 units: the key's units followed by
    zero units. For ASCII keys that is exactly the key's units, as the Java client hashes; for other
    keys the two official clients disagree, and this follows the Rust one (see ``hash_routing_key_java``).
    """
    units = key.encode("utf-16-le", "surrogatepass")
    if not key.isascii():
        units += bytes(2 * len(key.encode("utf-8", "surrogatepass")) - len(units))
    upper, _ = mmh3.hash64(units, ROUTING_SEED, signed=False)
    return u64_to_fraction(upper)


def hash_routing_key_java(key: str) -> float:
    """The Java client's position of ``key`` (``hashUnencodedChars``): differs from Rust for non-ASCII keys."""
    upper, _ = mmh3.hash64(key.encode("utf-16-le", "surrogatepass"), ROUTING_SEED, signed=False)
    return u64_to_fraction(upper)


@dataclass(frozen=True, slots=True)
class SegmentWithRange:
    """A stream segment and the key range [min_key, max_key) it owns."""

    scope: str
    stream: str
    segment_id: int
    min_key: float
    max_key: float

    @property
    def qualified_name(self) -> str:
        return qualified_segment_name(self.scope, self.stream, self.segment_id)


class StreamSegments:
    """The segments a writer currently writes to, keyed by their upper bounds."""

    __slots__ = ("_bounds", "_segments")

    def __init__(self, segments: Iterable[SegmentWithRange]) -> None:
        ordered = sorted(segments, key=lambda s: s.max_key)
        self._segments = ordered
        self._bounds = [s.max_key for s in ordered]

    @property
    def segments(self) -> list[SegmentWithRange]:
        return list(self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    def __bool__(self) -> bool:
        return bool(self._segments)

    def segment_for_position(self, position: float) -> SegmentWithRange:
        index = bisect.bisect_left(self._bounds, position)
        return self._segments[min(index, len(self._segments) - 1)]

    def segment_for_key(self, key: str | None) -> SegmentWithRange:
        """The segment for a routing key; without a key, a random one (as the official clients do)."""
        position = random.random() if key is None else hash_routing_key(key)
        return self.segment_for_position(position)

    def replace(self, sealed_id: int, successors: Iterable[SegmentWithRange]) -> StreamSegments:
        """The map after ``sealed_id`` was replaced by its successors that overlap its range."""
        sealed = next((s for s in self._segments if s.segment_id == sealed_id), None)
        if sealed is None:
            return self
        result = {s.segment_id: s for s in self._segments if s.segment_id != sealed_id}
        for succ in successors:
            if not (succ.min_key < sealed.max_key and succ.max_key > sealed.min_key):
                continue
            low, high = max(succ.min_key, sealed.min_key), min(succ.max_key, sealed.max_key)
            present = result.get(succ.segment_id)
            if present is not None:
                low, high = min(low, present.min_key), max(high, present.max_key)
            result[succ.segment_id] = SegmentWithRange(succ.scope, succ.stream, succ.segment_id, low, high)
        return StreamSegments(result.values())
