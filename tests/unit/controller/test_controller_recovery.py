"""Restart and crash recovery: a new controller over the same (in-memory) segment store finishes what a
crashed one started, and loses nothing."""

from __future__ import annotations

import grpc
import pytest

from anabranch.controller.errors import SegmentStoreUnavailableError
from anabranch.controller.segment_helper_memory import InMemorySegmentStore
from anabranch.controller.service import ControllerService
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from tests.unit.controller.helpers import S, fixed, scale_request, txn_request


class CrashingStore(InMemorySegmentStore):
    """Fails the n-th call of one operation, like a controller dying at that point."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_at: tuple[str, int] | None = None

    def _count(self, name: str) -> None:
        super()._count(name)
        if self.crash_at is not None and self.crash_at[0] == name and self.calls[name] >= self.crash_at[1]:
            self.crash_at = None
            raise SegmentStoreUnavailableError("simulated crash")


async def run(memory: InMemorySegmentStore, calls: list[tuple[str, object]]) -> list[object]:
    service = ControllerService("127.0.0.1", 12345, port=0, ops=memory, lease_check_interval=3600)
    await service.start()
    results = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = pb_grpc.ControllerServiceStub(channel)
            for method, request in calls:
                try:
                    results.append(await getattr(stub, method)(request))
                except grpc.aio.AioRpcError as exc:
                    results.append(exc.code())
    finally:
        await service.stop()
    return results


async def test_restart_keeps_metadata() -> None:
    memory = InMemorySegmentStore()
    await run(memory, [("createScope", pb.ScopeInfo(scope="sc")), ("createStream", fixed("sc", "st", 3))])
    (current, exists) = await run(memory, [("getCurrentSegments", S(scope="sc", stream="st")),
                                           ("checkScopeExists", pb.ScopeInfo(scope="sc"))])
    assert len(current.segmentRanges) == 3 and exists.exists  # type: ignore[attr-defined]


@pytest.mark.parametrize("crash_at", [("create_segment", 2), ("seal_segment", 1)])
async def test_crash_mid_scale_is_finished_on_restart(crash_at: tuple[str, int]) -> None:
    memory = CrashingStore()
    await run(memory, [("createScope", pb.ScopeInfo(scope="sc")), ("createStream", fixed("sc", "st", 2))])
    memory.calls.clear()
    memory.crash_at = crash_at
    (failed,) = await run(memory, [("scale", scale_request("sc", "st", [1], [(0.5, 0.75), (0.75, 1.0)]))])
    assert failed == grpc.StatusCode.UNAVAILABLE
    (current, check) = await run(memory, [
        ("getCurrentSegments", S(scope="sc", stream="st")),
        ("checkScale", pb.ScaleStatusRequest(streamInfo=S(scope="sc", stream="st"), epoch=0))])
    assert [r.segmentId.segmentId for r in current.segmentRanges] == [0, (1 << 32) | 2, (1 << 32) | 3]  # type: ignore[attr-defined]
    assert check.status == pb.ScaleStatusResponse.SUCCESS  # type: ignore[attr-defined]
    assert memory.segments["sc/st/1.#epoch.0"].sealed and "sc/st/3.#epoch.1" in memory.segments


async def test_crash_mid_commit_is_finished_and_mid_create_rolled_back_on_restart() -> None:
    memory = CrashingStore()
    info = S(scope="sc", stream="st")
    (_, _, created) = await run(memory, [("createScope", pb.ScopeInfo(scope="sc")),
                                         ("createStream", fixed("sc", "st", 2)),
                                         ("createTransaction", pb.CreateTxnRequest(streamInfo=info, lease=60000))])
    txn_id = created.txnId  # type: ignore[attr-defined]
    memory.calls.clear()
    memory.crash_at = ("merge_segments_batch", 2)
    (failed,) = await run(memory, [("commitTransaction", txn_request(info, txn_id))])
    assert failed == grpc.StatusCode.UNAVAILABLE
    memory.calls.clear()
    memory.crash_at = ("create_segment", 1)
    (failed,) = await run(memory, [("createStream", fixed("sc", "other", 1))])
    assert failed == grpc.StatusCode.UNAVAILABLE
    # A create writes the stream's records last, in one update: one cut short never happened (the restart's
    # sweep drops its index entry), and creating it again succeeds.
    (state, missing, listed, created, other) = await run(memory, [
        ("checkTransactionState", txn_request(info, txn_id)),
        ("checkStreamExists", S(scope="sc", stream="other")),
        ("listStreamsInScope", pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope="sc"))),
        ("createStream", fixed("sc", "other", 1)),
        ("getCurrentSegments", S(scope="sc", stream="other"))])
    assert state.state == pb.TxnState.COMMITTED  # type: ignore[attr-defined]
    assert not missing.exists  # type: ignore[attr-defined]
    assert "other" not in [s.stream for s in listed.streams]  # type: ignore[attr-defined]
    assert created.status == pb.CreateStreamStatus.SUCCESS  # type: ignore[attr-defined]
    assert len(other.segmentRanges) == 1  # type: ignore[attr-defined]
    assert not [n for n in memory.segments if "#transaction." in n]


async def test_failed_request_is_finished_by_the_next_one_or_the_sweep() -> None:
    memory = CrashingStore()
    info = S(scope="sc", stream="st")
    service = ControllerService("127.0.0.1", 12345, port=0, ops=memory, lease_check_interval=3600,
                                sweep_interval=3600)
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = pb_grpc.ControllerServiceStub(channel)
            await stub.createScope(pb.ScopeInfo(scope="sc"))
            await stub.createStream(fixed("sc", "st", 2))
            await stub.createStream(fixed("sc", "other", 1))
            memory.calls.clear()
            memory.crash_at = ("seal_segment", 1)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.sealStream(info)
            assert (await stub.sealStream(info)).status == pb.UpdateStreamStatus.SUCCESS
            assert memory.segments["sc/st/0.#epoch.0"].sealed and memory.segments["sc/st/1.#epoch.0"].sealed
            memory.calls.clear()
            memory.crash_at = ("update_segment_policy", 1)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.updateStream(fixed("sc", "other", 3))
            assert service.controller is not None
            await service.controller.resume_all()
            current = await stub.getCurrentSegments(S(scope="sc", stream="other"))
            assert len(current.segmentRanges) == 3
    finally:
        await service.stop()
