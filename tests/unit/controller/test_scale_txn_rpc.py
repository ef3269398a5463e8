"""Scale, truncation and transaction rpcs through gRPC against the in-memory segment store."""

from __future__ import annotations

import grpc
import pytest

from anabranch.protocol import controller_pb2 as pb
from tests.unit.controller.helpers import Harness, S, make_stream, scale_request, txn_request


async def test_scale_successors_and_check(harness: Harness) -> None:
    stub = harness.stub
    await make_stream(harness, "sc", "st", 2)
    info = S(scope="sc", stream="st")
    reply = await stub.scale(scale_request("sc", "st", [1], [(0.5, 0.75), (0.75, 1.0)]))
    assert reply.status == pb.ScaleResponse.STARTED and reply.epoch == 0
    new_ids = [r.segmentId.segmentId for r in reply.segments]
    assert new_ids == [(1 << 32) | 2, (1 << 32) | 3]
    assert (await stub.checkScale(pb.ScaleStatusRequest(streamInfo=info, epoch=0))).status == \
        pb.ScaleStatusResponse.SUCCESS
    assert (await stub.checkScale(pb.ScaleStatusRequest(streamInfo=info, epoch=1))).status == \
        pb.ScaleStatusResponse.IN_PROGRESS
    assert (await stub.checkScale(pb.ScaleStatusRequest(streamInfo=info, epoch=5))).status == \
        pb.ScaleStatusResponse.INVALID_INPUT
    current = (await stub.getCurrentSegments(info)).segmentRanges
    assert [r.segmentId.segmentId for r in current] == [0, *new_ids]
    assert harness.memory.segments["sc/st/1.#epoch.0"].sealed
    follow = await stub.getSegmentsImmediatelyFollowing(pb.SegmentId(streamInfo=info, segmentId=1))
    assert [e.segment.segmentId.segmentId for e in follow.segments] == new_ids
    assert all(list(e.value) == [1] for e in follow.segments)
    alias = await stub.getSegmentsImmediatlyFollowing(pb.SegmentId(streamInfo=info, segmentId=1))
    assert alias == follow
    assert (await stub.scale(scale_request("sc", "st", [1], [(0.5, 1.0)]))).status == \
        pb.ScaleResponse.PRECONDITION_FAILED
    assert (await stub.scale(scale_request("sc", "st", [0], [(0.0, 0.4)]))).status == pb.ScaleResponse.FAILURE
    below_min = await stub.scale(scale_request("sc", "st", [0, *new_ids], [(0.0, 1.0)]))
    assert below_min.status == pb.ScaleResponse.PRECONDITION_FAILED
    merge = await stub.scale(scale_request("sc", "st", new_ids, [(0.5, 1.0)]))
    assert merge.status == pb.ScaleResponse.STARTED and merge.epoch == 1
    follow = await stub.getSegmentsImmediatelyFollowing(pb.SegmentId(streamInfo=info, segmentId=new_ids[0]))
    assert sorted(follow.segments[0].value) == sorted(new_ids)
    epoch1 = await stub.getEpochSegments(pb.GetEpochSegmentsRequest(streamInfo=info, epoch=1))
    assert len(epoch1.segmentRanges) == 3
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.getEpochSegments(pb.GetEpochSegmentsRequest(streamInfo=info, epoch=9))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await stub.isSegmentValid(pb.SegmentId(streamInfo=info, segmentId=0))).response is True
    assert (await stub.isSegmentValid(pb.SegmentId(streamInfo=info, segmentId=1))).response is False
    between = await stub.getSegmentsBetween(pb.StreamCutRange(streamInfo=info, **{"from": {0: 0, 1: 0}}))
    assert len(between.segments) == 5


async def test_truncation_and_head(harness: Harness) -> None:
    stub = harness.stub
    await make_stream(harness, "sc", "st", 2)
    info = S(scope="sc", stream="st")
    harness.memory.append("sc/st/0.#epoch.0", 100)
    harness.memory.append("sc/st/1.#epoch.0", 100)
    await stub.scale(scale_request("sc", "st", [1], [(0.5, 1.0)]))
    new = (1 << 32) | 2
    head = await stub.getSegments(pb.GetSegmentsRequest(streamInfo=info))
    assert {(s.segmentId.segmentId, s.offset) for s in head.segments} == {(0, 0), (1, 0)}
    cut = pb.StreamCut(streamInfo=info, cut={0: 40, new: 0})
    assert (await stub.isStreamCutValid(cut)).response
    assert (await stub.truncateStream(cut)).status == pb.UpdateStreamStatus.SUCCESS
    assert harness.memory.segments["sc/st/0.#epoch.0"].start == 40
    assert "sc/st/1.#epoch.1" not in harness.memory.segments and "sc/st/1.#epoch.0" not in harness.memory.segments
    head = await stub.getSegments(pb.GetSegmentsRequest(streamInfo=info))
    assert {(s.segmentId.segmentId, s.offset) for s in head.segments} == {(0, 40), (new, 0)}
    behind = pb.StreamCut(streamInfo=info, cut={0: 10, 1: 0})
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.truncateStream(behind)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "behind" in str(refused.value.details())
    invalid = pb.StreamCut(streamInfo=info, cut={0: 50})
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.truncateStream(invalid)
    assert "key space" in str(refused.value.details())


async def test_transaction_commit_abort_ping(harness: Harness) -> None:
    stub = harness.stub
    await make_stream(harness, "sc", "st", 2)
    info = S(scope="sc", stream="st")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.createTransaction(pb.CreateTxnRequest(streamInfo=info, lease=5000))
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    created = await stub.createTransaction(pb.CreateTxnRequest(streamInfo=info, lease=90000))
    assert created.HasField("txnId") and created.txnId.highBits >> 32 == 0 and created.txnId.lowBits >= 0
    assert len(created.activeSegments) == 2
    hex_id = f"{((created.txnId.highBits & (2**64 - 1)) << 64 | created.txnId.lowBits):032x}"
    txn_seg = f"sc/st/0.#epoch.0#transaction.{hex_id}"
    harness.memory.append(txn_seg, 30)
    ping = pb.PingTxnRequest(streamInfo=info, txnId=created.txnId, lease=90000)
    assert (await stub.pingTransaction(ping)).status == pb.PingTxnStatus.OK
    big = pb.PingTxnRequest(streamInfo=info, txnId=created.txnId, lease=700000)
    assert (await stub.pingTransaction(big)).status == pb.PingTxnStatus.LEASE_TOO_LARGE
    assert (await stub.checkTransactionState(txn_request(info, created.txnId))).state == pb.TxnState.OPEN
    assert (await stub.commitTransaction(txn_request(info, created.txnId))).status == pb.TxnStatus.SUCCESS
    assert (await stub.commitTransaction(txn_request(info, created.txnId))).status == pb.TxnStatus.SUCCESS
    assert (await stub.abortTransaction(txn_request(info, created.txnId))).status == pb.TxnStatus.FAILURE
    assert (await stub.checkTransactionState(txn_request(info, created.txnId))).state == pb.TxnState.COMMITTED
    assert (await stub.pingTransaction(ping)).status == pb.PingTxnStatus.COMMITTED
    assert harness.memory.segments["sc/st/0.#epoch.0"].length == 30 and txn_seg not in harness.memory.segments
    other = await stub.createTransaction(pb.CreateTxnRequest(streamInfo=info, lease=10000))
    assert (await stub.abortTransaction(txn_request(info, other.txnId))).status == pb.TxnStatus.SUCCESS
    assert (await stub.checkTransactionState(txn_request(info, other.txnId))).state == pb.TxnState.ABORTED
    done = await stub.listCompletedTransactions(pb.ListCompletedTxnRequest(streamInfo=info))
    assert sorted(r.status for r in done.response) == [pb.TxnResponse.COMMITTED, pb.TxnResponse.ABORTED]
    unknown = pb.TxnId(highBits=0, lowBits=12345)
    assert (await stub.checkTransactionState(txn_request(info, unknown))).state == pb.TxnState.UNKNOWN
    assert (await stub.commitTransaction(txn_request(info, unknown))).status == pb.TxnStatus.TRANSACTION_NOT_FOUND


async def test_lease_expiry_aborts(harness: Harness) -> None:
    stub = harness.stub
    await make_stream(harness, "sc", "st", 1)
    info = S(scope="sc", stream="st")
    created = await stub.createTransaction(pb.CreateTxnRequest(streamInfo=info, lease=10000))
    txns = harness.service.controller.txns  # type: ignore[union-attr]
    harness.clock.advance(9)
    assert await txns.expire_due() == 0
    harness.clock.advance(2)
    assert await txns.expire_due() == 1
    assert (await stub.checkTransactionState(txn_request(info, created.txnId))).state == pb.TxnState.ABORTED


async def test_old_epoch_transaction_commits_by_rolling(harness: Harness) -> None:
    stub = harness.stub
    await make_stream(harness, "sc", "st", 2)
    info = S(scope="sc", stream="st")
    created = await stub.createTransaction(pb.CreateTxnRequest(streamInfo=info, lease=90000))
    hex_id = f"{(created.txnId.highBits << 64 | created.txnId.lowBits):032x}"
    harness.memory.append(f"sc/st/1.#epoch.0#transaction.{hex_id}", 25)
    await stub.scale(scale_request("sc", "st", [1], [(0.5, 0.75), (0.75, 1.0)]))
    assert (await stub.commitTransaction(txn_request(info, created.txnId))).status == pb.TxnStatus.SUCCESS
    current = (await stub.getCurrentSegments(info)).segmentRanges
    assert {r.segmentId.segmentId >> 32 for r in current} == {3}
    assert [(r.minKey, r.maxKey) for r in current] == [(0.0, 0.5), (0.5, 0.75), (0.75, 1.0)]
    rolled = (await stub.getEpochSegments(pb.GetEpochSegmentsRequest(streamInfo=info, epoch=2))).segmentRanges
    assert [(r.minKey, r.maxKey) for r in rolled] == [(0.0, 0.5), (0.5, 1.0)]
    rolled_names = [f"sc/st/{r.segmentId.segmentId & 0xFFFFFFFF}.#epoch.2" for r in rolled]
    assert harness.memory.segments[rolled_names[1]].length == 25
    assert all(harness.memory.segments[n].sealed for n in rolled_names)
    follow = await stub.getSegmentsImmediatelyFollowing(pb.SegmentId(streamInfo=info, segmentId=(1 << 32) | 2))
    assert [e.segment.segmentId.segmentId for e in follow.segments] == [rolled[1].segmentId.segmentId]
    assert (await stub.checkTransactionState(txn_request(info, created.txnId))).state == pb.TxnState.COMMITTED


async def test_seal_aborts_open_transactions(harness: Harness) -> None:
    stub = harness.stub
    await make_stream(harness, "sc", "st", 1)
    info = S(scope="sc", stream="st")
    created = await stub.createTransaction(pb.CreateTxnRequest(streamInfo=info, lease=90000))
    assert (await stub.sealStream(info)).status == pb.UpdateStreamStatus.SUCCESS
    assert (await stub.checkTransactionState(txn_request(info, created.txnId))).state == pb.TxnState.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.createTransaction(pb.CreateTxnRequest(streamInfo=info, lease=90000))
    assert err.value.code() == grpc.StatusCode.INTERNAL
