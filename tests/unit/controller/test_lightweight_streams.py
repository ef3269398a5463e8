"""Stream creates as a few batched rounds: concurrent creates, a crash at any step of a create (the stream exists
completely or not at all, and creating it again works), per-stream state that does not outlive a request, and the
periodic jobs visiting only the streams that need them."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from anabranch.controller.records import StreamConfiguration
from anabranch.controller.service import ControllerService
from anabranch.controller.watermarks import WatermarkJob
from anabranch.protocol import controller_pb2 as pb
from tests.unit.controller.helpers import Harness, S, fixed
from tests.unit.controller.test_controller_recovery import CrashingStore, run


async def test_concurrent_creates_then_seal_delete_and_create_again(harness: Harness) -> None:
    stub = harness.stub
    await stub.createScope(pb.ScopeInfo(scope="sc"))
    replies = await asyncio.gather(*(stub.createStream(fixed("sc", f"st{i}", 2)) for i in range(40)))
    assert {r.status for r in replies} == {pb.CreateStreamStatus.SUCCESS}
    again = await stub.createStream(fixed("sc", "st0", 2))
    assert again.status == pb.CreateStreamStatus.STREAM_EXISTS
    listed = await stub.listStreamsInScope(pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope="sc")))
    names = {s.stream for s in listed.streams}
    assert names == {f"st{i}" for i in range(40)}  # no mark streams until first needed
    assert "sc/st7/1.#epoch.0" in harness.memory.segments
    ctx = harness.service.controller.ctx  # type: ignore[union-attr]
    assert ctx.held_locks == 0  # per-stream locks live only while a workflow holds them
    assert (await stub.sealStream(S(scope="sc", stream="st7"))).status == pb.UpdateStreamStatus.SUCCESS
    assert (await stub.deleteStream(S(scope="sc", stream="st7"))).status == pb.DeleteStreamStatus.SUCCESS
    assert (await stub.createStream(fixed("sc", "st7", 1))).status == pb.CreateStreamStatus.SUCCESS
    current = await stub.getCurrentSegments(S(scope="sc", stream="st7"))
    assert [r.segmentId.segmentId for r in current.segmentRanges] == [2]  # numbers go on after the deleted ones
    assert (await stub.createStream(fixed("nope", "st", 1))).status == pb.CreateStreamStatus.SCOPE_NOT_FOUND
    assert not [name for name in harness.memory.tables if "nope" in name]  # the table made meanwhile is gone


async def test_a_create_in_a_scope_another_controller_deleted_leaves_nothing(harness: Harness) -> None:
    """A controller remembers scopes it saw exist and skips reading them on a create; once another controller has
    deleted the scope, the create finds out when it adds the stream to the scope's index."""
    mine = harness.service.controller
    assert mine is not None
    assert await mine.streams.create_scope("sc") == "SUCCESS"
    assert await mine.streams.create_stream("sc", "first", StreamConfiguration()) == "SUCCESS"
    reads = harness.memory.calls.get("read_table", 0)
    assert await mine.streams.create_stream("sc", "second", StreamConfiguration()) == "SUCCESS"
    assert harness.memory.calls["read_table"] == reads + 1  # only the deleted-stream record: the scope is known
    other = ControllerService("127.0.0.1", 12345, port=0, ops=harness.memory, lease_check_interval=3600)
    await other.start()
    try:
        theirs = other.controller
        assert theirs is not None
        for name in ("first", "second"):
            assert await theirs.streams.seal_stream("sc", name) == "SUCCESS"
            assert await theirs.streams.delete_stream("sc", name) == "SUCCESS"
        assert await theirs.streams.delete_scope("sc") == "SUCCESS"
    finally:
        await other.stop()
    assert await mine.streams.create_stream("sc", "third", StreamConfiguration()) == "SCOPE_NOT_FOUND"
    assert not [name for name in (*harness.memory.tables, *harness.memory.segments) if name.startswith("sc/")
                or "/sc/" in name]
    assert await mine.streams.create_stream("sc", "third", StreamConfiguration()) == "SCOPE_NOT_FOUND"


@pytest.mark.parametrize("crash_at", [("create_table", 1), ("create_segment", 1), ("create_segment", 2),
                                      ("update_table", 1), ("update_table", 2), ("read_table", 2)])
async def test_a_crash_anywhere_in_a_create_leaves_all_or_nothing(crash_at: tuple[str, int]) -> None:
    memory = CrashingStore()
    await run(memory, [("createScope", pb.ScopeInfo(scope="sc"))])
    memory.calls.clear()
    await run(memory, [])  # what a start alone calls, so that the crash hits the n-th call of the create itself
    op, nth = crash_at
    at_start = memory.calls.get(op, 0)
    memory.calls.clear()
    memory.crash_at = (op, at_start + nth)
    (failed,) = await run(memory, [("createStream", fixed("sc", "st", 2))])
    assert memory.crash_at is None  # it did crash there
    assert failed == grpc.StatusCode.UNAVAILABLE
    # After a restart (its sweep drops index entries of streams that do not exist) the stream is absent, listed
    # nowhere, and creating it works; or the crash hit after its records were written and it is complete.
    (exists, listed) = await run(memory, [
        ("checkStreamExists", S(scope="sc", stream="st")),
        ("listStreamsInScope", pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope="sc")))])
    assert exists.exists == ("st" in {s.stream for s in listed.streams})  # type: ignore[attr-defined]
    (created, current) = await run(memory, [("createStream", fixed("sc", "st", 2)),
                                            ("getCurrentSegments", S(scope="sc", stream="st"))])
    expected = pb.CreateStreamStatus.STREAM_EXISTS if exists.exists else pb.CreateStreamStatus.SUCCESS  # type: ignore[attr-defined]
    assert created.status == expected  # type: ignore[attr-defined]
    assert len(current.segmentRanges) == 2  # type: ignore[attr-defined]
    assert {"sc/st/0.#epoch.0", "sc/st/1.#epoch.0"} <= set(memory.segments)


async def test_the_periodic_sweep_resumes_what_failed() -> None:
    memory = CrashingStore()
    service = ControllerService("127.0.0.1", 12345, port=0, ops=memory, lease_check_interval=3600,
                                sweep_interval=3600)
    await service.start()
    try:
        controller = service.controller
        assert controller is not None
        assert await controller.streams.create_scope("sc") == "SUCCESS"
        assert await controller.streams.create_stream("sc", "st", StreamConfiguration()) == "SUCCESS"
        memory.crash_at = ("seal_segment", memory.calls.get("seal_segment", 0) + 1)
        with pytest.raises(Exception, match="simulated crash"):
            await controller.streams.seal_stream("sc", "st")
        assert ("sc", "st") in controller.ctx.unfinished
        await controller.resume_unfinished()
        assert not controller.ctx.unfinished
        assert memory.segments["sc/st/0.#epoch.0"].sealed
        assert (await controller.ctx.view("sc", "st")).state.value == "SEALED"
    finally:
        await service.stop()


async def test_the_watermark_job_visits_only_streams_with_marks(harness: Harness) -> None:
    controller = harness.service.controller
    assert controller is not None
    await controller.streams.create_scope("sc")
    for name in ("a", "b", "c"):
        assert await controller.streams.create_stream("sc", name, StreamConfiguration()) == "SUCCESS"
    assert await controller.writers.note_time("sc", "b", "w1", {0: 10}, 1000) == "SUCCESS"
    job = WatermarkJob(controller, harness.clock, lambda *_: asyncio.sleep(0, True), period=1.0)  # type: ignore[arg-type]
    held: list[int] = []
    process = job.process

    async def counting(scope: str, stream: str) -> object:
        held.append(len(controller.ctx.marked_streams))
        return await process(scope, stream)

    job.process = counting  # type: ignore[method-assign]
    await job.run_once()  # the first round looks at every stream, then keeps only those with marks
    assert controller.ctx.marked_streams == {("sc", "b")}
    assert held == [2, 1, 2]  # b (its writer noted a time) and the one visited: never a set of every stream
    job.process = process  # type: ignore[method-assign]
    assert await controller.writers.remove("sc", "b", "w1") == "SUCCESS"
    await job.run_once()
    assert not controller.ctx.marked_streams


async def test_the_mark_stream_is_created_when_first_asked_for(harness: Harness) -> None:
    stub = harness.stub
    await stub.createScope(pb.ScopeInfo(scope="sc"))
    for name in ("st", "other"):
        assert (await stub.createStream(fixed("sc", name, 2))).status == pb.CreateStreamStatus.SUCCESS
    assert not any("_MARK" in name for name in harness.memory.segments)  # a create makes no mark stream
    mark = S(scope="sc", stream="_MARKst")
    current = await stub.getCurrentSegments(mark)  # what a reader following watermarks asks first
    assert [r.segmentId.segmentId for r in current.segmentRanges] == [0]
    assert "sc/_MARKst/0.#epoch.0" in harness.memory.segments
    assert (await stub.checkStreamExists(mark)).exists
    assert (await stub.getCurrentSegments(mark)).segmentRanges == current.segmentRanges  # created once
    with pytest.raises(grpc.aio.AioRpcError) as missing:  # no mark stream for a stream that does not exist
        await stub.getCurrentSegments(S(scope="sc", stream="_MARKnope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert not (await stub.checkStreamExists(S(scope="sc", stream="_MARKnope"))).exists
    # seal, truncate and delete work on a stream without a mark stream, and delete removes one that exists
    other = S(scope="sc", stream="other")
    cut = pb.StreamCut(streamInfo=other, cut={0: 0, 1: 0})
    assert (await stub.truncateStream(cut)).status == pb.UpdateStreamStatus.SUCCESS
    for info in (other, S(scope="sc", stream="st")):
        assert (await stub.sealStream(info)).status == pb.UpdateStreamStatus.SUCCESS
        assert (await stub.deleteStream(info)).status == pb.DeleteStreamStatus.SUCCESS
    assert not harness.memory.segments
    listed = await stub.listStreamsInScope(pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope="sc")))
    assert list(listed.streams) == []
    assert not (await stub.checkStreamExists(mark)).exists  # and asking again does not bring it back
