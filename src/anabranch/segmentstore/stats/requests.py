"""Auto-scale requests: what the segment store asks the controller to do with one segment, and their stored form.

A ``ScaleRequest`` names the segment (scope, stream, segment id), the direction, how many parts a split
should make, whether a merge request is "silent" (the segment went idle: it stays cold for good), and the
segment store's wall time in milliseconds. Requests travel through the table segment ``AUTOSCALE_TABLE``:
key = the qualified segment name (UTF-8), value = the JSON object ``{"scope", "stream", "segment",
"direction" ("UP"|"DOWN"), "splits", "silent", "timestamp"}``. A newer request for a segment overwrites the
older one. Pure values; no I/O.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from anabranch.errors import DataCorruptionError
from anabranch.model.names import SYSTEM_SCOPE, qualified_segment_name, table_segment_name

AUTOSCALE_TABLE = table_segment_name(SYSTEM_SCOPE, "autoscale_requests")


def split_shares(num_splits: int, parts: int) -> list[int]:
    """How many of the ``num_splits`` segments a split asked for each of its ``parts`` stands for, in key order
    (sums to ``max(num_splits, parts)``). A split capped by the scale factor makes unequal parts, each as wide as
    its share, so that the parts split again later land on as many segments as the rate needed, not more (an
    equal cascade of 2 from a need of 10 ends at 16). Shared by the controller (the ranges) and the segment
    store (the rates the new segments start from)."""
    total = max(num_splits, parts)
    base, extra = divmod(total, parts)
    return [base + 1 if i < extra else base for i in range(parts)]


class ScaleDirection(enum.IntEnum):
    UP = 0
    DOWN = 1


@dataclass(frozen=True, slots=True)
class ScaleRequest:
    scope: str
    stream: str
    segment_id: int
    direction: ScaleDirection
    num_splits: int
    silent: bool
    timestamp: int
    """Wall-clock milliseconds when the segment store decided."""

    @property
    def segment_name(self) -> str:
        return qualified_segment_name(self.scope, self.stream, self.segment_id)

    def key(self) -> bytes:
        return self.segment_name.encode()

    def encode(self) -> bytes:
        return json.dumps({
            "scope": self.scope, "stream": self.stream, "segment": self.segment_id,
            "direction": self.direction.name, "splits": self.num_splits, "silent": self.silent,
            "timestamp": self.timestamp,
        }, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ScaleRequest:
        try:
            obj = json.loads(raw)
            return cls(str(obj["scope"]), str(obj["stream"]), int(obj["segment"]),
                       ScaleDirection[str(obj["direction"])], int(obj["splits"]), bool(obj["silent"]),
                       int(obj["timestamp"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataCorruptionError(f"malformed auto-scale request {raw[:200]!r}: {exc}") from exc
