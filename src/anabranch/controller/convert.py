"""Conversions between the Controller gRPC messages and the controller's records.

Invariants the official clients enforce (spec §6.4): every SegmentRange carries its segmentId with
streamInfo; a StreamConfig always has streamInfo and scalingPolicy; list pages always carry the
continuationToken submessage; transaction ids put the epoch in the top 32 bits of ``highBits``. Transaction ids
and stream info are converted by ``anabranch.protocol.controller_messages``, shared with the client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import cast

from anabranch.controller.epochs import SegmentRecord
from anabranch.controller.records import RetentionConfig, ScalingConfig, StreamConfiguration
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol.controller_messages import stream_info as shared_stream_info
from anabranch.protocol.controller_messages import txn_pb, txn_uuid


def txn_id_to_proto(txn_id: uuid.UUID) -> pb.TxnId:
    return cast(pb.TxnId, txn_pb(txn_id))


def txn_id_from_proto(txn_id: pb.TxnId) -> uuid.UUID:
    return txn_uuid(txn_id)


def stream_info(scope: str, stream: str) -> pb.StreamInfo:
    return cast(pb.StreamInfo, shared_stream_info(scope, stream))


def segment_id_proto(scope: str, stream: str, seg_id: int) -> pb.SegmentId:
    return pb.SegmentId(streamInfo=stream_info(scope, stream), segmentId=seg_id)


def segment_range(scope: str, stream: str, seg: SegmentRecord) -> pb.SegmentRange:
    return pb.SegmentRange(segmentId=segment_id_proto(scope, stream, seg.id), minKey=seg.key_start,
                           maxKey=seg.key_end)


def segment_ranges(scope: str, stream: str, segments: Iterable[SegmentRecord]) -> list[pb.SegmentRange]:
    return [segment_range(scope, stream, s) for s in sorted(segments, key=lambda s: s.key_start)]


def config_from_proto(config: pb.StreamConfig) -> StreamConfiguration:
    s = config.scalingPolicy
    scaling = ScalingConfig(s.scaleType, s.targetRate, s.scaleFactor, s.minNumSegments) \
        if config.HasField("scalingPolicy") else ScalingConfig()
    retention = None
    if config.HasField("retentionPolicy") and config.retentionPolicy.retentionType != 0:
        r = config.retentionPolicy
        retention = RetentionConfig(r.retentionType, r.retentionParam, r.retentionMax)
    return StreamConfiguration(scaling, retention, tuple(config.tags.tag), config.timestampAggregationTimeout,
                               config.rolloverSizeBytes)


def config_to_proto(scope: str, stream: str, config: StreamConfiguration) -> pb.StreamConfig:
    s = config.scaling
    message = pb.StreamConfig(
        streamInfo=stream_info(scope, stream),
        scalingPolicy=pb.ScalingPolicy(scaleType=s.scale_type, targetRate=s.target_rate,  # type: ignore[arg-type]
                                       scaleFactor=s.scale_factor, minNumSegments=s.min_segments),
        tags=pb.Tags(tag=list(config.tags)),
        timestampAggregationTimeout=config.timestamp_aggregation_timeout,
        rolloverSizeBytes=config.rollover_size_bytes,
    )
    if config.retention is not None:
        r = config.retention
        message.retentionPolicy.CopyFrom(pb.RetentionPolicy(
            retentionType=r.retention_type, retentionParam=r.param, retentionMax=r.max))  # type: ignore[arg-type]
    return message


def cut_from_proto(cut: Mapping[int, int]) -> dict[int, int]:
    return {int(k): int(v) for k, v in cut.items()}


def token(value: str) -> pb.ContinuationToken:
    return pb.ContinuationToken(token=value)
