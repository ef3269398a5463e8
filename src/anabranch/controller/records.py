"""Controller metadata records: stream configuration, stream state, transactions, reader groups, KVTs.

Each record is a frozen value with ``encode()`` (a CBOR-friendly dict) and ``decode()``; the stored
form lives in table segments (see ``metadata``). The proto layer converts to and from these in
``convert``; nothing here knows about gRPC or I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class StreamState(enum.StrEnum):
    CREATING = "CREATING"
    ACTIVE = "ACTIVE"
    UPDATING = "UPDATING"
    SCALING = "SCALING"
    TRUNCATING = "TRUNCATING"
    SEALING = "SEALING"
    SEALED = "SEALED"


class TxnStatus(enum.StrEnum):
    OPEN = "OPEN"
    COMMITTING = "COMMITTING"
    COMMITTED = "COMMITTED"
    ABORTING = "ABORTING"
    ABORTED = "ABORTED"


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    scale_type: int = 0
    target_rate: int = 0
    scale_factor: int = 0
    min_segments: int = 1


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    retention_type: int
    param: int
    max: int


@dataclass(frozen=True, slots=True)
class StreamConfiguration:
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    retention: RetentionConfig | None = None
    tags: tuple[str, ...] = ()
    timestamp_aggregation_timeout: int = 0
    rollover_size_bytes: int = 0

    def encode(self) -> dict[str, Any]:
        s, r = self.scaling, self.retention
        return {
            "scaling": [s.scale_type, s.target_rate, s.scale_factor, s.min_segments],
            "retention": None if r is None else [r.retention_type, r.param, r.max],
            "tags": list(self.tags),
            "tsAggTimeout": self.timestamp_aggregation_timeout,
            "rollover": self.rollover_size_bytes,
        }

    @classmethod
    def decode(cls, raw: Mapping[str, Any]) -> StreamConfiguration:
        r = raw.get("retention")
        return cls(
            ScalingConfig(*raw["scaling"]),
            None if r is None else RetentionConfig(*r),
            tuple(raw.get("tags", ())),
            int(raw.get("tsAggTimeout", 0)),
            int(raw.get("rollover", 0)),
        )

    def with_tags(self, tags: tuple[str, ...]) -> StreamConfiguration:
        return replace(self, tags=tags)


@dataclass(frozen=True, slots=True)
class TxnRecord:
    """One transaction; ``epoch`` is the epoch whose segments it writes to."""

    epoch: int
    status: TxnStatus
    lease_ms: int
    created_ms: int
    max_execution_expiry_ms: int
    writer_id: str = ""
    commit_timestamp: int = 0

    def encode(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "status": self.status.value, "lease": self.lease_ms,
                "created": self.created_ms, "maxExpiry": self.max_execution_expiry_ms,
                "writer": self.writer_id, "ts": self.commit_timestamp}

    @classmethod
    def decode(cls, raw: Mapping[str, Any]) -> TxnRecord:
        return cls(int(raw["epoch"]), TxnStatus(raw["status"]), int(raw["lease"]), int(raw["created"]),
                   int(raw["maxExpiry"]), str(raw.get("writer", "")), int(raw.get("ts", 0)))

    def with_status(self, status: TxnStatus, **changes: Any) -> TxnRecord:
        return replace(self, status=status, **changes)


@dataclass(frozen=True, slots=True)
class ScaleTransition:
    """A scale (or rolling-transaction) in progress: the epochs to add and what to do on the segment store.

    ``kind`` is "scale" or "rolling". For a scale, ``sealed`` are the ids leaving the active epoch and
    ``new_epochs`` holds one epoch. For rolling, ``new_epochs`` holds the duplicate of the transaction's
    epoch and the duplicate of the active epoch, and ``txn`` the transaction being committed.
    """

    kind: str
    old_epoch: int
    sealed: tuple[int, ...]
    new_ranges: tuple[tuple[float, float], ...]
    txn: str = ""

    def encode(self) -> dict[str, Any]:
        return {"kind": self.kind, "old": self.old_epoch, "sealed": list(self.sealed),
                "ranges": [list(r) for r in self.new_ranges], "txn": self.txn}

    @classmethod
    def decode(cls, raw: Mapping[str, Any]) -> ScaleTransition:
        return cls(str(raw["kind"]), int(raw["old"]), tuple(int(i) for i in raw["sealed"]),
                   tuple((float(a), float(b)) for a, b in raw["ranges"]), str(raw.get("txn", "")))
