"""Values exchanged with the controller, and their conversion to and from the gRPC messages.

Owns the plain Python types of ``ControllerClient``'s API (endpoints, successors, transaction states,
reader-group and key-value-table configurations) and their protobuf conversions; the conversions the
controller shares (stream info, transaction ids, stream cuts, stream configurations) live in
``anabranch.protocol.controller_messages`` and are re-exported here. Pure functions, no I/O.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from anabranch.client.hashing import SegmentWithRange
from anabranch.model.stream_cut import StreamCut
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol.controller_messages import cut_from_pb as cut_from_pb
from anabranch.protocol.controller_messages import cut_pb as cut_pb
from anabranch.protocol.controller_messages import stream_config_from_pb as stream_config_from_pb
from anabranch.protocol.controller_messages import stream_config_pb as stream_config_pb
from anabranch.protocol.controller_messages import stream_info as stream_info
from anabranch.protocol.controller_messages import txn_pb as txn_pb
from anabranch.protocol.controller_messages import txn_uuid as txn_uuid

NO_TIMESTAMP = -(2**63)
"""Commit timestamp meaning 'none' (Java's Long.MIN_VALUE)."""


class Endpoint(NamedTuple):
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Successor:
    """A segment that follows a sealed one, with every predecessor it has to wait for."""

    segment: SegmentWithRange
    predecessors: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ScaleResult:
    """A started scale: the new segments and the epoch being scaled from (pass it to ``check_scale``)."""

    new_segments: tuple[SegmentWithRange, ...]
    epoch: int


class TxnState(enum.IntEnum):
    """Numbers as in the controller API's ``TxnState.State``; printed by name."""

    UNKNOWN = 0
    OPEN = 1
    COMMITTING = 2
    COMMITTED = 3
    ABORTING = 4
    ABORTED = 5

    def __str__(self) -> str:
        return self.name


class PingStatus(enum.IntEnum):
    OK = 0
    LEASE_TOO_LARGE = 1
    MAX_EXECUTION_TIME_EXCEEDED = 2
    SCALE_GRACE_TIME_EXCEEDED = 3
    DISCONNECTED = 4
    COMMITTED = 5
    ABORTED = 6
    UNKNOWN = 7


@dataclass(frozen=True, slots=True)
class CreatedTxn:
    txn_id: uuid.UUID
    segments: tuple[SegmentWithRange, ...]


@dataclass(frozen=True, slots=True)
class ControllerReaderGroupConfig:
    """A reader group's configuration as the controller stores it (Java-style reader-group metadata)."""

    scope: str
    group: str
    starting_cuts: tuple[StreamCut, ...]
    ending_cuts: tuple[StreamCut, ...] = ()
    group_refresh_ms: int = 3000
    checkpoint_interval_ms: int = 30000
    max_outstanding_checkpoints: int = 3
    retention_type: int = 0
    generation: int = 0
    reader_group_id: uuid.UUID = field(default_factory=uuid.uuid4)
    rollover_size_bytes: int = 0


@dataclass(frozen=True, slots=True)
class KeyValueTableConfiguration:
    partition_count: int = 1
    primary_key_length: int = 8
    secondary_key_length: int = 0
    rollover_size_bytes: int = 0


def segment_range(rng: Any) -> SegmentWithRange:
    sid = rng.segmentId
    return SegmentWithRange(sid.streamInfo.scope, sid.streamInfo.stream, sid.segmentId, rng.minKey, rng.maxKey)


def reader_group_pb(config: ControllerReaderGroupConfig) -> Any:
    return pb.ReaderGroupConfiguration(
        scope=config.scope, readerGroupName=config.group, groupRefreshTimeMillis=config.group_refresh_ms,
        automaticCheckpointIntervalMillis=config.checkpoint_interval_ms,
        maxOutstandingCheckpointRequest=config.max_outstanding_checkpoints, retentionType=config.retention_type,
        generation=config.generation, readerGroupId=str(config.reader_group_id),
        startingStreamCuts=[cut_pb(c) for c in config.starting_cuts],
        endingStreamCuts=[cut_pb(c) for c in config.ending_cuts], rolloverSizeBytes=config.rollover_size_bytes,
    )


def reader_group_from_pb(msg: Any) -> ControllerReaderGroupConfig:
    return ControllerReaderGroupConfig(
        scope=msg.scope, group=msg.readerGroupName, starting_cuts=tuple(cut_from_pb(c) for c in msg.startingStreamCuts),
        ending_cuts=tuple(cut_from_pb(c) for c in msg.endingStreamCuts), group_refresh_ms=msg.groupRefreshTimeMillis,
        checkpoint_interval_ms=msg.automaticCheckpointIntervalMillis,
        max_outstanding_checkpoints=msg.maxOutstandingCheckpointRequest, retention_type=msg.retentionType,
        generation=msg.generation,
        reader_group_id=uuid.UUID(msg.readerGroupId) if msg.readerGroupId else uuid.UUID(int=0),
        rollover_size_bytes=msg.rolloverSizeBytes,
    )
