"""The controller inside ``anabranch standalone`` (real processes, real segment store): rpcs end to end,
restart and SIGKILL recovery, and the official Python client."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from anabranch.testing.processes import HOST, SegmentStoreProcess, ServerProcess, Standalone, free_port

pytestmark = pytest.mark.process
TIMEOUT = 30.0


def S(scope: str, stream: str) -> pb.StreamInfo:
    return pb.StreamInfo(scope=scope, stream=stream)


def fixed(scope: str, stream: str, n: int) -> pb.StreamConfig:
    return pb.StreamConfig(streamInfo=S(scope, stream), scalingPolicy=pb.ScalingPolicy(minNumSegments=n))


class Client:
    """A blocking stub whose every call has a deadline."""

    def __init__(self, server: Standalone) -> None:
        self.server = server
        self.channel = grpc.insecure_channel(f"{HOST}:{server.controller_port}")
        grpc.channel_ready_future(self.channel).result(timeout=TIMEOUT)
        self.stub = pb_grpc.ControllerServiceStub(self.channel)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.stub, name)
        return lambda request: method(request, timeout=TIMEOUT)


@pytest.fixture
def client(standalone: Standalone) -> Iterator[Client]:
    c = Client(standalone)
    yield c
    c.channel.close()


def scale_request(scope: str, stream: str, sealed: list[int], ranges: list[tuple[float, float]]) -> pb.ScaleRequest:
    return pb.ScaleRequest(streamInfo=S(scope, stream), sealedSegments=sealed,
                           newKeyRanges=[pb.ScaleRequest.KeyRangeEntry(start=a, end=b) for a, b in ranges])


def test_stream_lifecycle_on_real_segment_store(client: Client) -> None:
    assert client.createScope(pb.ScopeInfo(scope="sc")).status == pb.CreateScopeStatus.SUCCESS
    assert client.createStream(fixed("sc", "st", 3)).status == pb.CreateStreamStatus.SUCCESS
    current = client.getCurrentSegments(S("sc", "st")).segmentRanges
    assert len(current) == 3 and current[-1].maxKey == 1.0
    reply = client.scale(scale_request("sc", "st", [2], [(2 / 3, 0.9), (0.9, 1.0)]))
    assert reply.status == pb.ScaleResponse.STARTED
    follow = client.getSegmentsImmediatelyFollowing(pb.SegmentId(streamInfo=S("sc", "st"), segmentId=2))
    assert len(follow.segments) == 2
    created = client.createTransaction(pb.CreateTxnRequest(streamInfo=S("sc", "st"), lease=30000))
    assert len(created.activeSegments) == 4
    txn = pb.TxnRequest(streamInfo=S("sc", "st"), txnId=created.txnId)
    assert client.commitTransaction(txn).status == pb.TxnStatus.SUCCESS
    assert client.checkTransactionState(txn).state == pb.TxnState.COMMITTED
    head = client.getSegments(pb.GetSegmentsRequest(streamInfo=S("sc", "st")))
    assert {s.segmentId.segmentId for s in head.segments} == {0, 1, 2}
    cut = pb.StreamCut(streamInfo=S("sc", "st"), cut={0: 0, 1: 0, (1 << 32) | 3: 0, (1 << 32) | 4: 0})
    assert client.truncateStream(cut).status == pb.UpdateStreamStatus.SUCCESS
    assert client.sealStream(S("sc", "st")).status == pb.UpdateStreamStatus.SUCCESS
    assert list(client.getCurrentSegments(S("sc", "st")).segmentRanges) == []
    assert client.deleteStream(S("sc", "st")).status == pb.DeleteStreamStatus.SUCCESS
    assert client.deleteScope(pb.ScopeInfo(scope="sc")).status == pb.DeleteScopeStatus.SUCCESS
    uri = client.getURI(pb.SegmentId(streamInfo=S("x", "rg_kvtable"), segmentId=0))
    assert (uri.endpoint, uri.port) == (HOST, client.server.segmentstore_port)


def test_restart_keeps_metadata(standalone: Standalone) -> None:
    c = Client(standalone)
    c.createScope(pb.ScopeInfo(scope="sc"))
    c.createStream(fixed("sc", "st", 2))
    c.scale(scale_request("sc", "st", [0], [(0.0, 0.25), (0.25, 0.5)]))
    created = c.createTransaction(pb.CreateTxnRequest(streamInfo=S("sc", "st"), lease=60000))
    c.channel.close()
    assert standalone.stop() == 0
    standalone.start()
    c = Client(standalone)
    current = c.getCurrentSegments(S("sc", "st")).segmentRanges
    assert [r.segmentId.segmentId for r in current] == [(1 << 32) | 2, (1 << 32) | 3, 1]
    txn = pb.TxnRequest(streamInfo=S("sc", "st"), txnId=created.txnId)
    assert c.checkTransactionState(txn).state == pb.TxnState.OPEN
    assert c.commitTransaction(txn).status == pb.TxnStatus.SUCCESS
    assert c.checkTransactionState(txn).state == pb.TxnState.COMMITTED
    c.channel.close()


def test_sigkill_during_scale_and_commit_leaves_consistent_state(standalone: Standalone) -> None:
    """Kill -9 right after sending a scale and a commit; after restart each is wholly done or not begun."""
    c = Client(standalone)
    c.createScope(pb.ScopeInfo(scope="sc"))
    c.createStream(fixed("sc", "st", 8))
    created = c.createTransaction(pb.CreateTxnRequest(streamInfo=S("sc", "st"), lease=60000))
    txn = pb.TxnRequest(streamInfo=S("sc", "st"), txnId=created.txnId)
    ids = [r.segmentId.segmentId for r in c.getCurrentSegments(S("sc", "st")).segmentRanges]
    scale_future = c.stub.scale.future(scale_request("sc", "st", ids, [(0.0, 1.0)]), timeout=TIMEOUT)
    commit_future = c.stub.commitTransaction.future(txn, timeout=TIMEOUT)
    standalone.kill()
    for future in (scale_future, commit_future):
        with contextlib.suppress(grpc.RpcError):
            future.result()
    c.channel.close()
    standalone.start()
    c = Client(standalone)
    current = [r.segmentId.segmentId for r in c.getCurrentSegments(S("sc", "st")).segmentRanges]
    assert current == ids or (len(current) == 1 and current[0] >> 32 >= 1)
    state = c.checkTransactionState(txn).state
    assert state in (pb.TxnState.OPEN, pb.TxnState.COMMITTED)
    if state == pb.TxnState.OPEN:
        assert c.commitTransaction(txn).status == pb.TxnStatus.SUCCESS
    assert c.checkTransactionState(txn).state == pb.TxnState.COMMITTED
    c.channel.close()


def test_official_python_client_end_to_end(standalone: Standalone) -> None:
    pravega_client = pytest.importorskip("pravega_client")
    scope = "s" + uuid.uuid4().hex[:8]
    manager = pravega_client.StreamManager(standalone.controller_uri)
    assert manager.create_scope(scope)
    assert manager.create_stream(scope, "st", 2)
    writer = manager.create_writer(scope, "st")
    for i in range(20):
        writer.write_event(f"event-{i}", routing_key=f"key-{i}")
    writer.flush()
    txn_writer = manager.create_transaction_writer(scope, "st", 7)
    txn = txn_writer.begin_txn()
    txn.write_event("in-txn", routing_key="key-x")
    txn.commit()
    assert not txn.is_open()
    assert manager.seal_stream(scope, "st")
    assert manager.delete_stream(scope, "st")
    assert manager.delete_scope(scope)


def test_controller_command_against_a_separate_segment_store(tmp_path: Path) -> None:
    key = ["--token-signing-key-file", str(tmp_path / "signing.key")]
    segmentstore = SegmentStoreProcess(tmp_path / "data", None, *key)
    port = free_port()
    controller = ServerProcess(["controller", "--segmentstore", f"{HOST}:{segmentstore.segmentstore_port}",
                                "--host", HOST, "--port", str(port), *key], [port], tmp_path / "ctl")
    with segmentstore, controller:
        channel = grpc.insecure_channel(f"{HOST}:{port}")
        stub = pb_grpc.ControllerServiceStub(channel)
        for i in range(5):
            assert stub.createScope(pb.ScopeInfo(scope=f"scope-{i}"), timeout=TIMEOUT).status == \
                pb.CreateScopeStatus.SUCCESS
        names: list[str] = []
        request = pb.ScopesRequest()
        while True:
            page = stub.listScopes(request, timeout=TIMEOUT)
            assert page.HasField("continuationToken")
            if not page.scopes:
                break
            names.extend(page.scopes)
            request = pb.ScopesRequest(continuationToken=page.continuationToken)
        assert sorted(names) == ["_system", *(f"scope-{i}" for i in range(5))]
        stub.createStream(fixed("scope-0", "st", 1), timeout=TIMEOUT)
        listed = stub.listStreamsInScope(pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope="scope-0")),
                                         timeout=TIMEOUT)
        assert sorted(s.stream for s in listed.streams) == ["st"]
        channel.close()


def test_reader_groups_kvts_and_writers_on_real_segment_store(client: Client) -> None:
    client.createScope(pb.ScopeInfo(scope="sc"))
    client.createStream(fixed("sc", "st", 2))
    rg_id = str(uuid.uuid4())
    config = pb.ReaderGroupConfiguration(scope="sc", readerGroupName="rg", readerGroupId=rg_id, retentionType=1,
                                         maxOutstandingCheckpointRequest=3,
                                         startingStreamCuts=[pb.StreamCut(streamInfo=S("sc", "st"))])
    created = client.createReaderGroup(config)
    assert created.status == pb.CreateReaderGroupResponse.SUCCESS and created.config == config
    assert list(client.listSubscribers(S("sc", "st")).subscribers) == ["sc/rg"]
    assert client.updateReaderGroup(config).generation == 1
    assert client.deleteReaderGroup(pb.ReaderGroupInfo(scope="sc", readerGroup="rg", readerGroupId=rg_id)).status == \
        pb.DeleteReaderGroupStatus.SUCCESS
    kvt = pb.KeyValueTableConfig(scope="sc", kvtName="kv", partitionCount=2, primaryKeyLength=8)
    assert client.createKeyValueTable(kvt).status == pb.CreateKeyValueTableStatus.SUCCESS
    assert len(client.getCurrentSegmentsKeyValueTable(pb.KeyValueTableInfo(scope="sc", kvtName="kv"))
               .segmentRanges) == 2
    assert client.deleteKeyValueTable(pb.KeyValueTableInfo(scope="sc", kvtName="kv")).status == \
        pb.DeleteKVTableStatus.SUCCESS
    mark = pb.TimestampFromWriter(writer="w", position=pb.StreamCut(streamInfo=S("sc", "st"), cut={0: 0, 1: 0}),
                                  timestamp=5)
    assert client.noteTimestampFromWriter(mark).result == pb.TimestampResponse.SUCCESS
    assert client.isStreamCutValid(pb.StreamCut(streamInfo=S("sc", "st"), cut={0: 0, 1: 0})).response
    between = client.getSegmentsBetween(pb.StreamCutRange(streamInfo=S("sc", "st"), **{"from": {0: 0, 1: 0}}))
    assert sorted(s.segmentId for s in between.segments) == [0, 1]
    with pytest.raises(grpc.RpcError) as err:
        client.getCurrentSegments(S("sc", "missing"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert client.deleteScopeRecursive(pb.ScopeInfo(scope="sc")).status == pb.DeleteScopeStatus.SUCCESS
