"""Scope and stream rpcs through a real gRPC channel against the in-memory segment store."""

from __future__ import annotations

import grpc
import pytest

from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from tests.unit.controller.helpers import Harness, S, fixed, make_stream


async def test_scope_lifecycle(harness: Harness) -> None:
    stub = harness.stub
    assert (await stub.createScope(pb.ScopeInfo(scope="sc"))).status == pb.CreateScopeStatus.SUCCESS
    assert (await stub.createScope(pb.ScopeInfo(scope="sc"))).status == pb.CreateScopeStatus.SCOPE_EXISTS
    assert (await stub.createScope(pb.ScopeInfo(scope="bad/name"))).status == pb.CreateScopeStatus.INVALID_SCOPE_NAME
    assert (await stub.checkScopeExists(pb.ScopeInfo(scope="sc"))).exists
    page = await stub.listScopes(pb.ScopesRequest())
    assert {"sc", "_system"} <= set(page.scopes) and page.HasField("continuationToken")
    last = await stub.listScopes(pb.ScopesRequest(continuationToken=page.continuationToken))
    assert list(last.scopes) == [] and last.HasField("continuationToken")
    await stub.createStream(fixed("sc", "st", 1))
    assert (await stub.deleteScope(pb.ScopeInfo(scope="sc"))).status == pb.DeleteScopeStatus.SCOPE_NOT_EMPTY
    assert (await stub.deleteScopeRecursive(pb.ScopeInfo(scope="sc"))).status == pb.DeleteScopeStatus.SUCCESS
    assert not (await stub.checkScopeExists(pb.ScopeInfo(scope="sc"))).exists
    assert (await stub.deleteScope(pb.ScopeInfo(scope="sc"))).status == pb.DeleteScopeStatus.SCOPE_NOT_FOUND


async def test_create_stream_statuses_and_segments(harness: Harness) -> None:
    stub = harness.stub
    assert (await stub.createStream(fixed("nope", "st", 1))).status == pb.CreateStreamStatus.SCOPE_NOT_FOUND
    await make_stream(harness, "sc", "st", 49)
    assert (await stub.createStream(fixed("sc", "st", 3))).status == pb.CreateStreamStatus.STREAM_EXISTS
    assert (await stub.createStream(fixed("sc", "b@d", 1))).status == pb.CreateStreamStatus.INVALID_STREAM_NAME
    rate = pb.StreamConfig(streamInfo=S(scope="sc", stream="r"), scalingPolicy=pb.ScalingPolicy(
        scaleType=pb.ScalingPolicy.BY_RATE_IN_EVENTS_PER_SEC, targetRate=0, scaleFactor=2, minNumSegments=1))
    assert (await stub.createStream(rate)).status == pb.CreateStreamStatus.FAILURE
    current = await stub.getCurrentSegments(S(scope="sc", stream="st"))
    ranges = current.segmentRanges
    assert len(ranges) == 49 and ranges[-1].maxKey == 1.0 and ranges[0].minKey == 0.0
    assert all(r.segmentId.streamInfo.stream == "st" for r in ranges)
    assert [r.segmentId.segmentId for r in ranges] == list(range(49))
    assert "sc/st/0.#epoch.0" in harness.memory.segments
    listed = await stub.listStreamsInScope(pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope="sc")))
    assert {s.stream for s in listed.streams} == {"st"}  # the mark stream comes when first needed
    missing = await stub.listStreamsInScope(pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope="zz")))
    assert missing.status == pb.StreamsInScopeResponse.SCOPE_NOT_FOUND


async def test_config_update_tags_and_forced_scale(harness: Harness) -> None:
    stub = harness.stub
    await stub.createScope(pb.ScopeInfo(scope="sc"))
    await stub.createStream(fixed("sc", "st", 2, ("a", "b")))
    config = await stub.getStreamConfiguration(S(scope="sc", stream="st"))
    assert config.HasField("streamInfo") and config.HasField("scalingPolicy")
    assert list(config.tags.tag) == ["a", "b"] and not config.HasField("retentionPolicy")
    tagged = await stub.listStreamsInScopeForTag(pb.StreamsInScopeWithTagRequest(scope=pb.ScopeInfo(scope="sc"),
                                                                                  tag="a"))
    assert [s.stream for s in tagged.streams] == ["st"]
    update = fixed("sc", "st", 3, ("c",))
    assert (await stub.updateStream(update)).status == pb.UpdateStreamStatus.SUCCESS
    assert list((await stub.getStreamConfiguration(S(scope="sc", stream="st"))).tags.tag) == ["c"]
    current = (await stub.getCurrentSegments(S(scope="sc", stream="st"))).segmentRanges
    assert len(current) == 3 and current[-1].maxKey == 1.0
    assert {r.segmentId.segmentId >> 32 for r in current} == {1}
    none = await stub.listStreamsInScopeForTag(pb.StreamsInScopeWithTagRequest(scope=pb.ScopeInfo(scope="sc"),
                                                                                tag="a"))
    assert list(none.streams) == []
    missing = fixed("sc", "nope", 1)
    assert (await stub.updateStream(missing)).status == pb.UpdateStreamStatus.STREAM_NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.getStreamConfiguration(S(scope="sc", stream="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_seal_and_delete(harness: Harness) -> None:
    stub = harness.stub
    await make_stream(harness, "sc", "st", 2)
    info = S(scope="sc", stream="st")
    assert (await stub.deleteStream(info)).status == pb.DeleteStreamStatus.STREAM_NOT_SEALED
    assert (await stub.sealStream(info)).status == pb.UpdateStreamStatus.SUCCESS
    assert (await stub.sealStream(info)).status == pb.UpdateStreamStatus.SUCCESS
    assert harness.memory.segments["sc/st/0.#epoch.0"].sealed
    assert list((await stub.getCurrentSegments(info)).segmentRanges) == []
    assert list((await stub.getSegmentsImmediatelyFollowing(pb.SegmentId(streamInfo=info, segmentId=0))).segments) == []
    assert (await stub.updateStream(fixed("sc", "st", 2))).status == pb.UpdateStreamStatus.STREAM_SEALED
    async with grpc.aio.insecure_channel(f"127.0.0.1:{harness.service.port}",
                                         options=[("grpc.primary_user_agent", "tonic/0.5.2")]) as channel:
        rust_like = pb_grpc.ControllerServiceStub(channel)
        assert (await rust_like.updateStream(fixed("sc", "st", 2))).status == pb.UpdateStreamStatus.FAILURE
    assert (await stub.deleteStream(info)).status == pb.DeleteStreamStatus.SUCCESS
    assert (await stub.deleteStream(info)).status == pb.DeleteStreamStatus.STREAM_NOT_FOUND
    assert not (await stub.checkStreamExists(info)).exists
    assert "sc/st/0.#epoch.0" not in harness.memory.segments
    assert "sc/_MARKst/0.#epoch.0" not in harness.memory.segments
    assert (await stub.createStream(fixed("sc", "st", 1))).status == pb.CreateStreamStatus.SUCCESS
    recreated = (await stub.getCurrentSegments(info)).segmentRanges
    assert [r.segmentId.segmentId for r in recreated] == [2]


async def test_get_uri_for_any_name(harness: Harness) -> None:
    uri = await harness.stub.getURI(pb.SegmentId(streamInfo=S(scope="x", stream="rg_kvtable"), segmentId=0))
    assert (uri.endpoint, uri.port) == ("127.0.0.1", 12345)
    assert (await harness.stub.getDelegationToken(S(scope="x", stream="y"))).delegationToken == ""
