"""Issue 10's control-plane cases through a real ``anabranch standalone``: requests past the documented limits
are refused before anything is allocated (5, 6), malformed continuation tokens are INVALID_ARGUMENT (7), an
abandoned key-value table create is finished rather than left half done, and truncation cuts are checked with the
reason said (11). Every call has a bounded timeout."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from anabranch.client import ReaderGroupConfig, StreamManager, StringSerializer
from anabranch.controller.errors import NoSuchSegmentError
from anabranch.controller.kvtables import kvt_segment_name
from anabranch.controller.segment_helper import SegmentHelper
from anabranch.controller.validation import MAX_KVT_PARTITIONS, MAX_SEGMENTS_PER_EPOCH
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from anabranch.testing.processes import HOST, Standalone, free_port, wait_for_port
from anabranch.testing.wire_fuzz import resident_mib

pytestmark = pytest.mark.process
TIMEOUT = 30.0
EVENT_HEADER = struct.Struct(">ii")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Standalone, str]]:
    admin_port = free_port()
    process = Standalone(tmp_path_factory.mktemp("ctlcases") / "data", None, None, "--admin-port", str(admin_port),
                         "--containers", "4")
    process.start()
    try:
        wait_for_port(HOST, admin_port, 30, process.process)
        yield process, f"http://{HOST}:{admin_port}"
    finally:
        process.kill()


@pytest.fixture(scope="module")
def stub(server: tuple[Standalone, str]) -> Iterator[pb_grpc.ControllerServiceStub]:
    with grpc.insecure_channel(f"{HOST}:{server[0].controller_port}",
                               options=[("grpc.max_send_message_length", 16 << 20)]) as channel:
        yield pb_grpc.ControllerServiceStub(channel)


def refused(call: Any, request: Any, timeout: float = TIMEOUT) -> str:
    """Assert ``call`` answers INVALID_ARGUMENT; return its message."""
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=timeout)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.value.code(), error.value.details())
    return str(error.value.details())


def stream_config(scope: str, stream: str, segments: int) -> pb.StreamConfig:
    return pb.StreamConfig(streamInfo=pb.StreamInfo(scope=scope, stream=stream),
                           scalingPolicy=pb.ScalingPolicy(minNumSegments=segments))


def test_stream_segment_limit_refused_before_anything_is_allocated(
        server: tuple[Standalone, str], stub: pb_grpc.ControllerServiceStub) -> None:
    stub.createScope(pb.ScopeInfo(scope="limits"), timeout=TIMEOUT)
    before = resident_mib(server[0].pid)
    for count in (2**31 - 1, 100_000, MAX_SEGMENTS_PER_EPOCH + 1):
        started = time.monotonic()
        message = refused(stub.createStream, stream_config("limits", f"huge{count}", count))
        assert time.monotonic() - started < 5 and f"at most {MAX_SEGMENTS_PER_EPOCH}" in message
        assert not stub.checkStreamExists(pb.StreamInfo(scope="limits", stream=f"huge{count}"),
                                          timeout=TIMEOUT).exists
    assert resident_mib(server[0].pid) - before < 50
    listed = stub.listStreamsInScope(pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope="limits")), timeout=TIMEOUT)
    assert list(listed.streams) == []
    assert "scaleFactor" in refused(stub.updateStream, pb.StreamConfig(
        streamInfo=pb.StreamInfo(scope="limits", stream="x"),
        scalingPolicy=pb.ScalingPolicy(scaleType=1, targetRate=1, scaleFactor=2**31 - 1, minNumSegments=1)))
    assert stub.createStream(stream_config("limits", "most", MAX_SEGMENTS_PER_EPOCH), timeout=TIMEOUT).status == \
        pb.CreateStreamStatus.SUCCESS
    current = stub.getCurrentSegments(pb.StreamInfo(scope="limits", stream="most"), timeout=TIMEOUT)
    assert len(current.segmentRanges) == MAX_SEGMENTS_PER_EPOCH
    split = pb.ScaleRequest(streamInfo=pb.StreamInfo(scope="limits", stream="most"), sealedSegments=[0],
                            newKeyRanges=[pb.ScaleRequest.KeyRangeEntry(start=0.0, end=0.0005),
                                          pb.ScaleRequest.KeyRangeEntry(start=0.0005, end=0.001)])
    assert stub.scale(split, timeout=TIMEOUT).status == pb.ScaleResponse.FAILURE


async def _segment_missing(port: int, name: str) -> bool:
    helper = SegmentHelper(HOST, port)
    try:
        await helper.get_segment_info(name)
    except NoSuchSegmentError:
        return True
    finally:
        await helper.close()
    return False


def test_table_partition_limit_and_abandoned_create(server: tuple[Standalone, str],
                                                    stub: pb_grpc.ControllerServiceStub) -> None:
    process = server[0]
    stub.createScope(pb.ScopeInfo(scope="kvlimits"), timeout=TIMEOUT)
    started = time.monotonic()
    huge = pb.KeyValueTableConfig(scope="kvlimits", kvtName="huge", partitionCount=2**31 - 1, primaryKeyLength=4)
    assert f"1 to {MAX_KVT_PARTITIONS} partitions" in refused(stub.createKeyValueTable, huge)
    assert time.monotonic() - started < 5
    assert asyncio.run(_segment_missing(process.segmentstore_port, kvt_segment_name("kvlimits", "huge", 0)))
    assert stub.getKeyValueTableConfiguration(pb.KeyValueTableInfo(scope="kvlimits", kvtName="huge"),
                                              timeout=TIMEOUT).status == pb.KeyValueTableConfigResponse.TABLE_NOT_FOUND
    assert "keys have at most" in refused(stub.createKeyValueTable, pb.KeyValueTableConfig(
        scope="kvlimits", kvtName="longkeys", partitionCount=1, primaryKeyLength=2**31 - 1))
    # A client that gives up does not leave a half-created table: the controller finishes the create.
    full = pb.KeyValueTableConfig(scope="kvlimits", kvtName="abandoned", partitionCount=MAX_KVT_PARTITIONS,
                                  primaryKeyLength=4)
    with pytest.raises(grpc.RpcError) as error:
        stub.createKeyValueTable(full, timeout=0.02)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    info = pb.KeyValueTableInfo(scope="kvlimits", kvtName="abandoned")
    deadline = time.monotonic() + TIMEOUT
    while stub.getKeyValueTableConfiguration(info, timeout=TIMEOUT).status != \
            pb.KeyValueTableConfigResponse.SUCCESS:
        assert time.monotonic() < deadline, "the abandoned create was never finished"
        time.sleep(0.05)
    last = kvt_segment_name("kvlimits", "abandoned", MAX_KVT_PARTITIONS - 1)
    assert not asyncio.run(_segment_missing(process.segmentstore_port, last))
    assert stub.createKeyValueTable(full, timeout=TIMEOUT).status == pb.CreateKeyValueTableStatus.TABLE_EXISTS


def test_stored_configuration_size_limit(stub: pb_grpc.ControllerServiceStub) -> None:
    stub.createScope(pb.ScopeInfo(scope="rglimits"), timeout=TIMEOUT)
    cuts = [pb.StreamCut(streamInfo=pb.StreamInfo(scope="rglimits", stream=f"s{i}"),
                         cut={j: 2**40 + j for j in range(9_000)}) for i in range(12)]
    config = pb.ReaderGroupConfiguration(scope="rglimits", readerGroupName="big",
                                         readerGroupId="00000000-0000-0000-0000-000000000000",
                                         startingStreamCuts=cuts)
    assert "a stored configuration has at most" in refused(stub.createReaderGroup, config)
    status = stub.getReaderGroupConfig(pb.ReaderGroupInfo(scope="rglimits", readerGroup="big"), timeout=TIMEOUT)
    assert status.status == pb.ReaderGroupConfigResponse.RG_NOT_FOUND


@pytest.mark.parametrize("token", ["zz", "abcd", "0" * 40_000, "é"])
def test_malformed_continuation_tokens_are_invalid_argument(stub: pb_grpc.ControllerServiceStub, token: str) -> None:
    stub.createScope(pb.ScopeInfo(scope="tokens"), timeout=TIMEOUT)
    scope = pb.ScopeInfo(scope="tokens")
    given = pb.ContinuationToken(token=token)
    refused(stub.listScopes, pb.ScopesRequest(continuationToken=given))
    refused(stub.listStreamsInScope, pb.StreamsInScopeRequest(scope=scope, continuationToken=given))
    refused(stub.listKeyValueTablesInScope, pb.KVTablesInScopeRequest(scope=scope, continuationToken=given))
    refused(stub.listStreamsInScopeForTag, pb.StreamsInScopeWithTagRequest(scope=scope, tag="t",
                                                                          continuationToken=given))


def test_unknown_enum_values_and_bad_fields(stub: pb_grpc.ControllerServiceStub) -> None:
    stub.createScope(pb.ScopeInfo(scope="enums"), timeout=TIMEOUT)
    bad_scaling = stream_config("enums", "s", 1)
    bad_scaling.scalingPolicy.scaleType = -1  # type: ignore[assignment]
    assert "ScalingPolicyType" in refused(stub.createStream, bad_scaling)
    bad_retention = stream_config("enums", "s", 1)
    bad_retention.retentionPolicy.retentionType = 7  # type: ignore[assignment]
    assert "RetentionPolicyType" in refused(stub.createStream, bad_retention)
    info = pb.StreamInfo(scope="enums", stream="s")
    refused(stub.getEpochSegments, pb.GetEpochSegmentsRequest(streamInfo=info, epoch=-1))
    refused(stub.scale, pb.ScaleRequest(streamInfo=info, sealedSegments=[0],
                                        newKeyRanges=[pb.ScaleRequest.KeyRangeEntry(start=float("nan"), end=1.0)]))
    refused(stub.createTransaction, pb.CreateTxnRequest(streamInfo=info, lease=-1))
    refused(stub.checkStreamExists, pb.StreamInfo(scope="enums", stream="s" * 256))
    assert stub.createScope(pb.ScopeInfo(scope="s" * 256), timeout=TIMEOUT).status == \
        pb.CreateScopeStatus.INVALID_SCOPE_NAME


async def _write_and_read_segment(uri: str, ss_port: int, scope: str, stream: str, count: int) -> bytes:
    async with StreamManager(uri) as manager:
        writer = manager.create_writer(scope, stream)
        for i in range(count):
            await writer.write_event(f"event-{i}")
        await writer.flush()
        await writer.close()
    helper = SegmentHelper(HOST, ss_port)
    try:
        return await helper.read_segment(f"{scope}/{stream}/0.#epoch.0", 0, 1 << 20)
    finally:
        await helper.close()


async def _read_from_head(uri: str, scope: str, stream: str, wanted: int) -> list[str]:
    async with StreamManager(uri) as manager:
        group = await manager.create_reader_group(scope, "head", ReaderGroupConfig.for_streams(scope, stream))
        reader = await group.create_reader("r", StringSerializer())
        events: list[str] = []
        deadline = time.monotonic() + TIMEOUT
        while len(events) < wanted and time.monotonic() < deadline:
            read = await reader.read_next_event(timeout=2)
            if read.event is not None:
                events.append(read.event)
        await reader.close()
        return events


def test_truncation_cuts_are_checked_and_refusals_say_why(server: tuple[Standalone, str],
                                                         stub: pb_grpc.ControllerServiceStub) -> None:
    process = server[0]
    stub.createScope(pb.ScopeInfo(scope="trunc"), timeout=TIMEOUT)
    stub.createStream(stream_config("trunc", "t", 1), timeout=TIMEOUT)
    data = asyncio.run(_write_and_read_segment(process.controller_uri, process.segmentstore_port, "trunc", "t", 5))
    boundaries = [0]
    while boundaries[-1] < len(data):
        _kind, length = EVENT_HEADER.unpack_from(data, boundaries[-1])
        boundaries.append(boundaries[-1] + EVENT_HEADER.size + length)
    assert len(boundaries) == 6 and boundaries[-1] == len(data)
    info = pb.StreamInfo(scope="trunc", stream="t")

    def truncate(cut: dict[int, int]) -> pb.StreamCut:
        return pb.StreamCut(streamInfo=info, cut=cut)

    assert "not at an event boundary" in refused(stub.truncateStream, truncate({0: 3}))
    assert "not at an event boundary" in refused(stub.truncateStream, truncate({0: boundaries[1] + 4}))
    assert "beyond the tail" in refused(stub.truncateStream, truncate({0: len(data) + 1}))
    assert "never had" in refused(stub.truncateStream, truncate({0: boundaries[1], 5: 0}))
    assert "negative" in refused(stub.truncateStream, truncate({0: -1}))
    assert stub.truncateStream(truncate({0: boundaries[2]}), timeout=TIMEOUT).status == \
        pb.UpdateStreamStatus.SUCCESS
    assert "behind the stream's head" in refused(stub.truncateStream, truncate({0: boundaries[1]}))
    assert asyncio.run(_read_from_head(process.controller_uri, "trunc", "t", 3)) == ["event-2", "event-3", "event-4"]


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_ready_reports_every_container(server: tuple[Standalone, str]) -> None:
    status, body = _get(f"{server[1]}/ready")
    assert status == 200 and body["ready"] is True and body["reasons"] == []
    assert [c["state"] for c in body["segmentstore"]["containers"]] == ["running"] * 4
    assert body["controller"] == {"metadata": "reachable"}
    assert _get(f"{server[1]}/health") == (200, {"status": "ok"})


def test_abandoned_stream_create_is_finished(stub: pb_grpc.ControllerServiceStub) -> None:
    stub.createScope(pb.ScopeInfo(scope="abandon"), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as error:
        stub.createStream(stream_config("abandon", "s", MAX_SEGMENTS_PER_EPOCH), timeout=0.02)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    info = pb.StreamInfo(scope="abandon", stream="s")
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            if len(stub.getCurrentSegments(info, timeout=TIMEOUT).segmentRanges) == MAX_SEGMENTS_PER_EPOCH:
                break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND or "still being created" in str(exc.details()), exc
        assert time.monotonic() < deadline, "the abandoned create was never finished"
        time.sleep(0.05)
    assert stub.createStream(stream_config("abandon", "s", MAX_SEGMENTS_PER_EPOCH), timeout=TIMEOUT).status == \
        pb.CreateStreamStatus.STREAM_EXISTS
