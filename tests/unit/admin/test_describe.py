"""``describe_stream`` against a controller over the in-memory segment store: epochs with reasons, splits
and merges, head and tail, bytes between them, retention records, state; plus the epoch reason codec."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from anabranch.controller.describe import describe_stream, epoch_history, iso_time
from anabranch.controller.epochs import (
    REASON_AUTO,
    REASON_CREATED,
    REASON_MANUAL,
    REASON_ROLLING,
    REASON_UPDATE,
    EpochRecord,
    SegmentRecord,
    duplicate_epoch,
)
from anabranch.controller.errors import StreamNotFoundError
from anabranch.controller.facade import Controller
from anabranch.controller.records import RetentionConfig, ScalingConfig, StreamConfiguration
from anabranch.controller.retention import RETENTION_KEY, RecordedCut
from anabranch.controller.segment_helper_memory import InMemorySegmentStore
from anabranch.model.names import qualified_segment_name, segment_id

T0 = 1_700_000_000_000


class StepClock:
    """Wall milliseconds that advance by one second per reading, so epochs get distinct known times."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1000
        return self.now


@pytest.fixture
async def controller() -> AsyncIterator[Controller]:
    c = Controller(InMemorySegmentStore(), "127.0.0.1", 12345, wall_ms=StepClock())
    await c.bootstrap()
    assert await c.streams.create_scope("sc") == "SUCCESS"
    yield c


def memory_of(c: Controller) -> InMemorySegmentStore:
    assert isinstance(c.ctx.ops, InMemorySegmentStore)
    return c.ctx.ops


def append(c: Controller, seg: int, length: int, stream: str = "st") -> None:
    memory_of(c).append(qualified_segment_name("sc", stream, seg), length)


async def test_new_stream(controller: Controller) -> None:
    config = StreamConfiguration(ScalingConfig(2, 10, 3, 2), RetentionConfig(1, 60_000, 120_000), ("a", "b"))
    assert await controller.streams.create_stream("sc", "st", config) == "SUCCESS"
    append(controller, 1, 40)
    d = await describe_stream(controller, "sc", "st")
    assert d["scope"] == "sc" and d["stream"] == "st" and d["state"] == "ACTIVE"
    assert d["config"] == {
        "scaling": {"type": "BY_RATE_IN_EVENTS_PER_SEC", "target_rate": 10, "scale_factor": 3, "min_segments": 2},
        "retention": {"type": "TIME", "param": 60_000, "max": 120_000},
        "tags": ["a", "b"], "rollover_size_bytes": 0, "timestamp_aggregation_timeout_ms": 0,
    }
    assert [(s["id"], s["key_start"], s["key_end"], s["length"], s["sealed"]) for s in d["segments"]] == [
        (0, 0.0, 0.5, 0, False), (1, 0.5, 1.0, 40, False)]
    (epoch0,) = d["epochs"]
    assert epoch0["reason"] == REASON_CREATED and epoch0["segments"] == [0, 1] and epoch0["created"] == [0, 1]
    assert epoch0["creation_time"] == iso_time(epoch0["creation_time_ms"])
    assert epoch0["creation_time"].endswith("+00:00") and epoch0["creation_time_ms"] > T0
    assert d["head"] == [{"segment": 0, "offset": 0}, {"segment": 1, "offset": 0}]
    assert d["tail"] == [{"segment": 0, "offset": 0}, {"segment": 1, "offset": 40}]
    assert d["total_bytes"] == 40
    assert d["retention"] == {"policy": {"type": "TIME", "param": 60_000, "max": 120_000}, "truncation": None,
                              "recorded_cuts": 0, "last_recorded_cut": None, "subscribers": []}


async def test_scales_record_reasons_splits_and_merges(controller: Controller) -> None:
    assert await controller.streams.create_stream("sc", "st", StreamConfiguration(ScalingConfig(0, 0, 0, 2))) \
        == "SUCCESS"
    append(controller, 0, 10)
    append(controller, 1, 20)
    status, created, _ = await controller.scaling.scale("sc", "st", [0], [(0.0, 0.25), (0.25, 0.5)])
    assert status == "STARTED"
    s2, s3 = (s.id for s in created)
    append(controller, s2, 5)
    status, merged, _ = await controller.scaling.scale("sc", "st", [s3, 1], [(0.25, 1.0)], reason=REASON_AUTO)
    assert status == "STARTED"
    (s4,) = (s.id for s in merged)
    update = StreamConfiguration(ScalingConfig(0, 0, 0, 3))
    assert await controller.streams.update_stream("sc", "st", update) == "SUCCESS"
    d = await describe_stream(controller, "sc", "st")
    epochs = d["epochs"]
    assert [e["reason"] for e in epochs] == [REASON_CREATED, REASON_MANUAL, REASON_AUTO, REASON_UPDATE]
    assert [e["creation_time_ms"] for e in epochs] == sorted({e["creation_time_ms"] for e in epochs})
    assert epochs[1]["splits"] == [{"segment": 0, "into": [s2, s3]}] and epochs[1]["merges"] == []
    assert epochs[1]["sealed"] == [0] and epochs[1]["created"] == [s2, s3]
    assert epochs[2]["merges"] == [{"segments": [s3, 1], "into": s4}] and epochs[2]["splits"] == []
    assert epochs[3]["sealed"] == [s2, s4] and len(epochs[3]["created"]) == 3
    assert d["active_epoch"] == d["latest_epoch"] == 3
    assert [s["id"] for s in d["segments"]] == epochs[3]["segments"]
    assert all(s["epoch"] == 3 and s["length"] == 0 for s in d["segments"])
    assert d["head"] == [{"segment": 0, "offset": 0}, {"segment": 1, "offset": 0}]
    assert d["total_bytes"] == 10 + 20 + 5


async def test_rolling_transaction_epochs(controller: Controller) -> None:
    assert await controller.streams.create_stream("sc", "st", StreamConfiguration()) == "SUCCESS"
    txn_id, _segments = await controller.txns.create("sc", "st", 30_000)
    status, _created, _ = await controller.scaling.scale("sc", "st", [0], [(0.0, 0.5), (0.5, 1.0)])
    assert status == "STARTED"
    assert await controller.txns.commit("sc", "st", txn_id) == "SUCCESS"
    epochs = (await describe_stream(controller, "sc", "st"))["epochs"]
    assert [e["reason"] for e in epochs] == [REASON_CREATED, REASON_MANUAL, REASON_ROLLING, REASON_ROLLING]
    assert epochs[2]["reference_epoch"] == 0 and len(epochs[2]["segments"]) == 1
    assert len(epochs[3]["segments"]) == 2 and epochs[3]["splits"] == []


async def test_truncation_moves_the_head_and_is_reported(controller: Controller) -> None:
    assert await controller.streams.create_stream("sc", "st", StreamConfiguration(ScalingConfig(0, 0, 0, 2))) \
        == "SUCCESS"
    append(controller, 0, 100)
    append(controller, 1, 50)
    _status, created, _ = await controller.scaling.scale("sc", "st", [0], [(0.0, 0.5)])
    (s2,) = (s.id for s in created)
    append(controller, s2, 30)
    assert await controller.streams.truncate_stream("sc", "st", {s2: 10, 1: 20}) == "SUCCESS"
    d = await describe_stream(controller, "sc", "st")
    assert d["head"] == [{"segment": 1, "offset": 20}, {"segment": s2, "offset": 10}]
    assert d["tail"] == [{"segment": 1, "offset": 50}, {"segment": s2, "offset": 30}]
    assert d["total_bytes"] == 30 + 20
    truncation = d["retention"]["truncation"]
    assert {k: truncation[k] for k in ("cut", "done")} == {"cut": d["head"], "done": True}
    assert isinstance(truncation["time_ms"], int) and truncation["time"].startswith("20")
    assert {s["id"]: s["start_offset"] for s in d["segments"]} == {s2: 10, 1: 20}


async def test_retention_records_and_subscribers(controller: Controller) -> None:
    assert await controller.streams.create_stream("sc", "st", StreamConfiguration()) == "SUCCESS"
    view = await controller.ctx.view("sc", "st")
    await view.table.put("truncation", {"cut": {0: 0}, "done": True, "time": T0})
    cuts = [RecordedCut(T0, 0, {0: 0}), RecordedCut(T0 + 5000, 70, {0: 70})]
    await view.table.put(RETENTION_KEY, {"cuts": [c.encode() for c in cuts]})
    await view.table.put("subscriber/sc/rg1", {"cut": {}})
    retention = (await describe_stream(controller, "sc", "st"))["retention"]
    assert retention["recorded_cuts"] == 2
    assert retention["last_recorded_cut"] == {"time_ms": T0 + 5000, "time": iso_time(T0 + 5000), "size": 70,
                                              "cut": [{"segment": 0, "offset": 70}]}
    assert retention["subscribers"] == ["sc/rg1"]
    assert retention["truncation"] == {"cut": [{"segment": 0, "offset": 0}], "done": True, "time_ms": T0,
                                       "time": iso_time(T0)}


async def test_sealed_stream(controller: Controller) -> None:
    assert await controller.streams.create_stream("sc", "st", StreamConfiguration()) == "SUCCESS"
    append(controller, 0, 7)
    assert await controller.streams.seal_stream("sc", "st") == "SUCCESS"
    d = await describe_stream(controller, "sc", "st")
    assert d["state"] == "SEALED"
    assert [(s["id"], s["length"], s["sealed"]) for s in d["segments"]] == [(0, 7, True)]
    assert d["tail"] == [{"segment": 0, "offset": 7}] and d["total_bytes"] == 7


async def test_unknown_stream(controller: Controller) -> None:
    with pytest.raises(StreamNotFoundError):
        await describe_stream(controller, "sc", "nope")


def test_epoch_reason_round_trip_and_old_records() -> None:
    seg = SegmentRecord(0, 0, T0, 0.0, 1.0)
    record = EpochRecord(2, 2, (seg,), T0, REASON_AUTO)
    assert EpochRecord.decode(record.encode()) == record
    old = {"e": 1, "r": 1, "t": T0, "s": [seg.encode()]}
    assert EpochRecord.decode(old).reason == ""
    assert duplicate_epoch(record, 3, 5, T0 + 1).reason == REASON_ROLLING
    (entry,) = epoch_history([EpochRecord.decode(old)], times_known=False)
    assert entry["reason"] is None and entry["creation_time"] is None and entry["creation_time_ms"] is None
    assert segment_id(0, 0) in entry["segments"]
