"""What is true about a segment store right now: each container's state and the records it set aside.

``SegmentStore.health()`` builds a :class:`StoreHealth` (the admin endpoint's ``/ready`` serves it): every
container is ``running``, ``disk_full`` (its Tier-1 log refused the last write for lack of space; reads still
work and writes resume by themselves once space is freed) or ``failed`` (it serves nothing until it is
recovered; ``reason`` says why). ``QuarantineLog`` collects the records that failed to decode when a table
index was rebuilt and were skipped (each reported once): the rest of the table serves, the bad bytes stay
in the segment for an operator to inspect. A store is ready when every container it should run is running.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

ContainerState = Literal["running", "disk_full", "failed"]


@dataclass(frozen=True, slots=True)
class ContainerHealth:
    container_id: int
    state: ContainerState
    reason: str = ""
    """Why the container is not running normally ("" when it is)."""


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """Bytes ``[offset, offset + length)`` of ``segment`` that failed to decode and were skipped."""

    segment: str
    offset: int
    length: int
    reason: str


@dataclass(frozen=True, slots=True)
class StoreHealth:
    containers: tuple[ContainerHealth, ...]
    quarantined: tuple[QuarantinedRecord, ...] = ()

    @property
    def ready(self) -> bool:
        """Every container serves (a full disk still serves reads, so it is not ready for writes either)."""
        return all(c.state == "running" for c in self.containers)

    @property
    def failed(self) -> list[ContainerHealth]:
        return [c for c in self.containers if c.state == "failed"]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for /ready and the CLI)."""
        return {
            "ready": self.ready,
            "containers": [
                {"id": c.container_id, "state": c.state, **({"reason": c.reason} if c.reason else {})}
                for c in self.containers
            ],
            "quarantined": [
                {"segment": q.segment, "offset": q.offset, "length": q.length, "reason": q.reason}
                for q in self.quarantined
            ],
        }


@dataclass(slots=True)
class QuarantineLog:
    """Records set aside by table index rebuilds, each logged once (a rebuild may run again and again)."""

    limit: int = 1000
    """At most this many are kept (the oldest are reported; later ones are only counted)."""
    records: dict[tuple[str, int], QuarantinedRecord] = field(default_factory=dict)
    dropped: int = 0

    def report(self, segment: str, offset: int, length: int, reason: str) -> None:
        key = (segment, offset)
        if key in self.records:
            return
        log.error("quarantined %d bytes at offset %d of table segment %r (%s); the rest of the table serves",
                  length, offset, segment, reason)
        if len(self.records) >= self.limit:
            self.dropped += 1
            return
        self.records[key] = QuarantinedRecord(segment, offset, length, reason)

    def forget(self, segment: str) -> None:
        """The segment was deleted: its quarantined bytes went with it."""
        for key in [key for key in self.records if key[0] == segment]:
            del self.records[key]

    def snapshot(self) -> tuple[QuarantinedRecord, ...]:
        return tuple(self.records.values())
