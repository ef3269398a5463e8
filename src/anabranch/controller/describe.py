"""What ``anabranch stream describe`` and the admin endpoint show about one stream, as a JSON-ready dict.

``describe_stream`` reads the controller's records of a stream (configuration, state, every epoch with
its time and reason, the truncation and retention records, subscribers) and asks the segment store for
the length of every segment from the head of the stream to its tail. The pure helpers (``epoch_history``,
``cut_entries``, ``iso_time``...) are shared with the CLI, which builds the same shape from the public
gRPC API when no admin endpoint is given (without reasons and times, which only the controller knows).

Shape (every key always present; unknown values are None):
``scope``, ``stream``, ``state``, ``config`` {scaling {type, target_rate, scale_factor, min_segments},
retention {type, param, max} | None, tags, rollover_size_bytes, timestamp_aggregation_timeout_ms},
``active_epoch``, ``latest_epoch``, ``segments`` (the active epoch's segments by key: id, number, epoch,
key_start, key_end, start_offset, length, sealed), ``epochs`` (epoch, reference_epoch, creation_time_ms,
creation_time, reason, segments, sealed, created, splits [{segment, into}], merges [{segments, into}];
a rolling-transaction epoch copies an earlier epoch's ranges, so it lists no splits or merges),
``head`` and ``tail`` ([{segment, offset}]), ``total_bytes``, ``retention`` {policy, truncation {cut,
done, time_ms, time (None while the truncate workflow does not record a ``time``)} | None, recorded_cuts,
last_recorded_cut {time_ms, time, size, cut} | None, subscribers}.
Nothing here changes any state.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from anabranch.controller.epochs import (
    REASON_ROLLING,
    EpochRecord,
    SegmentRecord,
    all_segments,
    segments_between,
)
from anabranch.controller.errors import NoSuchSegmentError
from anabranch.controller.readergroups import SUBSCRIBER_PREFIX
from anabranch.controller.records import RetentionConfig, StreamConfiguration
from anabranch.controller.retention import RETENTION_KEY, RecordedCut
from anabranch.controller.segment_helper import SegmentInfo

if TYPE_CHECKING:
    from anabranch.controller.facade import Controller

SCALE_TYPES = {0: "FIXED_NUM_SEGMENTS", 1: "BY_RATE_IN_KBYTES_PER_SEC", 2: "BY_RATE_IN_EVENTS_PER_SEC"}
RETENTION_TYPES = {0: "NONE", 1: "TIME", 2: "SIZE"}


def iso_time(ms: int | None) -> str | None:
    """UTC ISO-8601 with milliseconds, or None for an unknown time."""
    if ms is None:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).isoformat(timespec="milliseconds")


def scaling_entry(scale_type: int, target_rate: int, scale_factor: int, min_segments: int) -> dict[str, Any]:
    return {"type": SCALE_TYPES.get(scale_type, str(scale_type)), "target_rate": target_rate,
            "scale_factor": scale_factor, "min_segments": min_segments}


def retention_entry(retention_type: int, param: int, maximum: int) -> dict[str, Any] | None:
    if retention_type == 0:
        return None
    return {"type": RETENTION_TYPES.get(retention_type, str(retention_type)), "param": param, "max": maximum}


def config_entry(config: StreamConfiguration) -> dict[str, Any]:
    s, r = config.scaling, config.retention
    return {
        "scaling": scaling_entry(s.scale_type, s.target_rate, s.scale_factor, s.min_segments),
        "retention": None if r is None else retention_entry(r.retention_type, r.param, r.max),
        "tags": list(config.tags),
        "rollover_size_bytes": config.rollover_size_bytes,
        "timestamp_aggregation_timeout_ms": config.timestamp_aggregation_timeout,
    }


def cut_entries(cut: Mapping[int, int]) -> list[dict[str, int]]:
    """A stream cut as a JSON list (JSON object keys cannot be integers), by segment id."""
    return [{"segment": seg_id, "offset": offset} for seg_id, offset in sorted(cut.items())]


def segment_entry(seg: SegmentRecord, info: SegmentInfo | None) -> dict[str, Any]:
    return {"id": seg.id, "number": seg.number, "epoch": seg.creation_epoch, "key_start": seg.key_start,
            "key_end": seg.key_end, "start_offset": None if info is None else info.start_offset,
            "length": None if info is None else info.length, "sealed": None if info is None else info.sealed}


def epoch_changes(previous: EpochRecord, current: EpochRecord) -> dict[str, Any]:
    """The segments ``current`` sealed and created relative to ``previous``, grouped into splits and merges."""
    gone = [s for s in previous.sorted_segments() if current.find(s.id) is None]
    new = [s for s in current.sorted_segments() if previous.find(s.id) is None]
    splits = []
    for old in gone:
        into = [n.id for n in new if n.overlaps(old)]
        if len(into) > 1:
            splits.append({"segment": old.id, "into": into})
    merges = []
    for fresh in new:
        sources = [o.id for o in gone if o.overlaps(fresh)]
        if len(sources) > 1:
            merges.append({"segments": sources, "into": fresh.id})
    return {"sealed": [s.id for s in gone], "created": [s.id for s in new], "splits": splits, "merges": merges}


def epoch_history(epochs: Sequence[EpochRecord], *, times_known: bool = True) -> list[dict[str, Any]]:
    """Every epoch, oldest first, with what changed from the one before."""
    history = []
    previous: EpochRecord | None = None
    for record in epochs:
        when = record.creation_time if times_known else None
        entry: dict[str, Any] = {
            "epoch": record.epoch, "reference_epoch": record.reference_epoch, "creation_time_ms": when,
            "creation_time": iso_time(when), "reason": record.reason or None,
            "segments": [s.id for s in record.sorted_segments()],
        }
        if previous is None:
            entry.update(sealed=[], created=entry["segments"], splits=[], merges=[])
        else:
            entry.update(epoch_changes(previous, record))
            if record.reason == REASON_ROLLING:
                entry.update(splits=[], merges=[])
        history.append(entry)
        previous = record
    return history


def bytes_from_head(head: Mapping[int, int], segments: Iterable[SegmentRecord],
                    infos: Mapping[int, SegmentInfo]) -> int:
    """Bytes readable from the head cut to the tail: each segment from its head offset (or its start) on."""
    total = 0
    for seg in segments:
        info = infos.get(seg.id)
        if info is not None:
            total += max(0, info.length - max(head.get(seg.id, 0), info.start_offset))
    return total


def retention_state(policy: RetentionConfig | None, truncation: Mapping[str, Any] | None,
                    recorded: Mapping[str, Any] | None, subscribers: list[str]) -> dict[str, Any]:
    cuts = [] if recorded is None else [RecordedCut.decode(r) for r in recorded.get("cuts", [])]
    last = cuts[-1] if cuts else None
    return {
        "policy": None if policy is None else retention_entry(policy.retention_type, policy.param, policy.max),
        "truncation": None if truncation is None else {
            "cut": cut_entries({int(k): int(v) for k, v in truncation["cut"].items()}),
            "done": bool(truncation.get("done", False)),
            "time_ms": truncation.get("time"),
            "time": iso_time(truncation.get("time")),
        },
        "recorded_cuts": len(cuts),
        "last_recorded_cut": None if last is None else {
            "time_ms": last.time_ms, "time": iso_time(last.time_ms), "size": last.size,
            "cut": cut_entries(last.cut),
        },
        "subscribers": subscribers,
    }


async def describe_stream(controller: Controller, scope: str, stream: str) -> dict[str, Any]:
    """The description of ``scope/stream``; ``StreamNotFoundError`` if it does not exist."""
    ctx = controller.ctx
    view = await ctx.view(scope, stream)
    epochs = await ctx.all_epochs(view)
    by_id = all_segments(epochs)
    head = dict(await controller.head(scope, stream))
    active = await ctx.epoch(view, view.active)
    readable = segments_between(head, {}, epochs[0], active, by_id)
    infos: dict[int, SegmentInfo] = {}
    for seg in {s.id: s for s in [*readable, *active.segments]}.values():
        try:
            infos[seg.id] = await ctx.ops.get_segment_info(view.segment_name(seg.id))
        except NoSuchSegmentError:
            continue
    truncation = await view.table.get_value("truncation")
    recorded = await view.table.get_value(RETENTION_KEY)
    prefix = SUBSCRIBER_PREFIX.encode()
    subscribers = sorted([key[len(prefix):].decode() async for key, _v, _ver in view.table.items()
                          if key.startswith(prefix)])
    tail = {s.id: infos[s.id].length for s in active.segments if s.id in infos}
    return {
        "scope": scope,
        "stream": stream,
        "state": view.state.value,
        "config": config_entry(view.config),
        "active_epoch": view.active,
        "latest_epoch": view.latest,
        "segments": [segment_entry(s, infos.get(s.id)) for s in active.sorted_segments()],
        "epochs": epoch_history(epochs),
        "head": cut_entries(head),
        "tail": cut_entries(tail),
        "total_bytes": bytes_from_head(head, readable, infos),
        "retention": retention_state(view.config.retention, truncation, recorded, subscribers),
    }
