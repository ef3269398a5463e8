"""Shared helpers of the controller unit tests: a fake clock, the harness type and request builders."""

from __future__ import annotations

from dataclasses import dataclass

from anabranch.controller.segment_helper_memory import InMemorySegmentStore
from anabranch.controller.service import ControllerService
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc

S = pb.StreamInfo


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    service: ControllerService
    memory: InMemorySegmentStore
    stub: pb_grpc.ControllerServiceStub
    clock: FakeClock


def fixed(scope: str, stream: str, n: int, tags: tuple[str, ...] = ()) -> pb.StreamConfig:
    config = pb.StreamConfig(streamInfo=S(scope=scope, stream=stream),
                             scalingPolicy=pb.ScalingPolicy(scaleType=pb.ScalingPolicy.FIXED_NUM_SEGMENTS,
                                                           minNumSegments=n))
    if tags:
        config.tags.tag.extend(tags)
    return config


async def make_stream(h: Harness, scope: str, stream: str, n: int = 2) -> None:
    await h.stub.createScope(pb.ScopeInfo(scope=scope))
    assert (await h.stub.createStream(fixed(scope, stream, n))).status == pb.CreateStreamStatus.SUCCESS


def scale_request(scope: str, stream: str, sealed: list[int], ranges: list[tuple[float, float]]) -> pb.ScaleRequest:
    return pb.ScaleRequest(streamInfo=S(scope=scope, stream=stream), sealedSegments=sealed,
                           newKeyRanges=[pb.ScaleRequest.KeyRangeEntry(start=a, end=b) for a, b in ranges])


def txn_request(info: pb.StreamInfo, txn_id: pb.TxnId) -> pb.TxnRequest:
    return pb.TxnRequest(streamInfo=info, txnId=txn_id)
