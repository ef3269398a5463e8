"""The Controller API's protobuf messages ↔ Anabranch's values, for everything both planes exchange: stream
info, transaction ids, stream cuts and stream configurations. Pure functions, no I/O; the one home of these
conversions (the client's ``controller_types`` and the controller's ``convert`` use them).

Transaction ids put the epoch in the top 32 bits of ``highBits``; both halves travel as signed 64-bit numbers.
"""

from __future__ import annotations

import uuid
from typing import Any

from anabranch.model.stream_config import (
    RetentionPolicy,
    RetentionType,
    ScaleType,
    ScalingPolicy,
    StreamConfiguration,
)
from anabranch.model.stream_cut import StreamCut
from anabranch.protocol import controller_pb2 as pb


def stream_info(scope: str, stream: str) -> Any:
    return pb.StreamInfo(scope=scope, stream=stream)


def txn_pb(txn_id: uuid.UUID) -> Any:
    value = txn_id.int
    high, low = value >> 64, value & (2**64 - 1)
    return pb.TxnId(highBits=high - 2**64 if high >= 2**63 else high, lowBits=low - 2**64 if low >= 2**63 else low)


def txn_uuid(txn: Any) -> uuid.UUID:
    return uuid.UUID(int=((txn.highBits & (2**64 - 1)) << 64) | (txn.lowBits & (2**64 - 1)))


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
