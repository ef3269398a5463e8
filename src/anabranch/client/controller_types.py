"""Values exchanged with the controller, and their conversion to and from the gRPC messages.

Owns the plain Python types of ``ControllerClient``'s API (endpoints, successors, transaction states,
reader-group and key-value-table configurations) and the only code that builds or reads protobuf
messages of the Controller API. Pure functions, no I/O.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from anabranch.client.config import (
    RetentionPolicy,
    RetentionType,
    ScaleType,
    ScalingPolicy,
    StreamConfiguration,
)
from anabranch.client.hashing import SegmentWithRange
from anabranch.model.stream_cut import StreamCut
from anabranch.protocol import controller_pb2 as pb

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


def stream_info(scope: str, stream: str) -> Any:
    return pb.StreamInfo(scope=scope, stream=stream)


def txn_pb(txn_id: uuid.UUID) -> Any:
    value = txn_id.int
    high, low = value >> 64, value & (2**64 - 1)
    return pb.TxnId(highBits=high - 2**64 if high >= 2**63 else high, lowBits=low - 2**64 if low >= 2**63 else low)


def txn_uuid(txn: Any) -> uuid.UUID:
    return uuid.UUID(int=((txn.highBits & (2**64 - 1)) << 64) | (txn.lowBits & (2**64 - 1)))


def segment_range(rng: Any) -> SegmentWithRange:
    sid = rng.segmentId
    return SegmentWithRange(sid.streamInfo.scope, sid.streamInfo.stream, sid.segmentId, rng.minKey, rng.maxKey)


def cut_pb(cut: StreamCut) -> Any:
    return pb.StreamCut(streamInfo=stream_info(cut.scope, cut.stream), cut=dict(cut.positions))


def cut_from_pb(msg: Any) -> StreamCut:
    return StreamCut(msg.streamInfo.scope, msg.streamInfo.stream, dict(msg.cut))


def stream_config_pb(scope: str, stream: str, config: StreamConfiguration) -> Any:
    s, r = config.scaling, config.retention
    msg = pb.StreamConfig(
        streamInfo=stream_info(scope, stream),
        scalingPolicy=pb.ScalingPolicy(
            scaleType=s.scale_type.name, targetRate=s.target_rate, scaleFactor=s.scale_factor,
            minNumSegments=s.min_num_segments,
        ),
        tags=pb.Tags(tag=list(config.tags)),
        timestampAggregationTimeout=config.timestamp_aggregation_timeout_ms,
        rolloverSizeBytes=config.rollover_size_bytes,
    )
    if r.retention_type != RetentionType.NONE:
        msg.retentionPolicy.CopyFrom(pb.RetentionPolicy(
            retentionType=r.retention_type.name, retentionParam=r.retention_param, retentionMax=r.retention_max,
        ))
    return msg


def stream_config_from_pb(msg: Any) -> StreamConfiguration:
    sp, rp = msg.scalingPolicy, msg.retentionPolicy
    retention = RetentionPolicy.none()
    if msg.HasField("retentionPolicy") and rp.retentionType != 0:
        retention = RetentionPolicy(RetentionType(rp.retentionType), rp.retentionParam, rp.retentionMax)
    return StreamConfiguration(
        scaling=ScalingPolicy(ScaleType(sp.scaleType), sp.targetRate, sp.scaleFactor, max(1, sp.minNumSegments)),
        retention=retention,
        tags=tuple(msg.tags.tag),
        timestamp_aggregation_timeout_ms=msg.timestampAggregationTimeout,
        rollover_size_bytes=msg.rolloverSizeBytes,
    )


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
