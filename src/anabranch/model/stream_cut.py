"""Stream cuts: a position in a stream, one offset per segment (segment id → byte offset).

An offset < 0 marks a "future" segment (not yet reached). The empty cut means unbounded
(the head as a start, the tail as an end).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class StreamCut:
    scope: str
    stream: str
    positions: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", MappingProxyType(dict(self.positions)))

    @property
    def is_unbounded(self) -> bool:
        return not self.positions

    @classmethod
    def unbounded(cls, scope: str, stream: str) -> StreamCut:
        return cls(scope, stream, {})

    def __hash__(self) -> int:
        return hash((self.scope, self.stream, tuple(sorted(self.positions.items()))))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StreamCut)
            and (self.scope, self.stream) == (other.scope, other.stream)
            and dict(self.positions) == dict(other.positions)
        )
