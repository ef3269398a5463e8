"""``anabranch stream describe SCOPE/STREAM``: segments, epoch history, head and tail, retention.

Two sources give the same dict (the shape of ``controller.describe``):
- ``--admin URL`` (default: the controller's host on port 9091 when an admin endpoint answers there):
  the controller's admin endpoint (``GET /streams/<scope>/<stream>``) answers everything,
  including each epoch's time and reason, the stream's state and the retention records;
- otherwise, the public APIs only: the Controller gRPC API (configuration, every epoch's segments until
  NOT_FOUND, current segments, head) and the segment store's ``GetStreamSegmentInfo`` for lengths. Epoch
  times and reasons, the truncation record and the retention history are not in those APIs and show as
  unknown; the state is SEALED when the stream has no current segments, else ACTIVE.
"""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import click
from rich.console import Console
from rich.table import Table

from anabranch.client.errors import NoSuchStreamError
from anabranch.client.stream_manager import StreamManager
from anabranch.controller.describe import (
    bytes_from_head,
    cut_entries,
    epoch_history,
    retention_entry,
    scaling_entry,
    segment_entry,
)
from anabranch.controller.epochs import EpochRecord, SegmentRecord, all_segments, segments_between
from anabranch.controller.segment_helper import SegmentInfo
from anabranch.model.names import qualified_segment_name, segment_epoch, segment_number
from anabranch.protocol import commands as wire

ADMIN_TIMEOUT = 30.0


DEFAULT_ADMIN_PORT = 9091
ADMIN_PROBE_TIMEOUT = 1.0


def admin_url_for(controller: str) -> str | None:
    """The admin endpoint next to ``controller`` (its host, port 9091) if one answers there for this very
    controller without credentials (with auth on it does not: the description then comes from the public APIs)."""
    target = controller.split("://", 1)[-1].split(",", 1)[0]
    host, _sep, port = target.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    url = f"http://{host}:{DEFAULT_ADMIN_PORT}"
    try:
        with urllib.request.urlopen(f"{url}/about", timeout=ADMIN_PROBE_TIMEOUT) as reply:
            about = json.load(reply)
    except (OSError, ValueError):
        return None
    served = str(about.get("controller", "")) if isinstance(about, dict) else ""
    return url if served.rpartition(":")[2] == port else None


def fetch_description(admin: str, scope: str, stream: str) -> dict[str, Any]:
    """The description from an admin endpoint; a click error naming the endpoint when it cannot answer."""
    url = f"{admin.rstrip('/')}/streams/{quote(scope, safe='')}/{quote(stream, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=ADMIN_TIMEOUT) as reply:
            result: dict[str, Any] = json.load(reply)
            return result
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise click.ClickException(f"{url}: {message}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach the admin endpoint {url}: {exc}") from exc


def _info_request(segment: str, request_id: int) -> wire.GetStreamSegmentInfo:
    return wire.GetStreamSegmentInfo(request_id, segment, "")


async def _segment_info(manager: StreamManager, name: str) -> SegmentInfo | None:
    reply = await manager.router.request(name, functools.partial(_info_request, name))
    if not isinstance(reply, wire.StreamSegmentInfo) or not reply.exists or reply.is_deleted:
        return None
    return SegmentInfo(name, reply.write_offset, reply.start_offset, reply.is_sealed)


async def grpc_description(manager: StreamManager, scope: str, stream: str) -> dict[str, Any]:
    """The description built from the public gRPC and wire APIs (no epoch times or reasons)."""
    controller = manager.controller
    config = await controller.get_stream_configuration(scope, stream)
    epochs: list[EpochRecord] = []
    while True:
        try:
            ranges = await controller.get_epoch_segments(scope, stream, len(epochs))
        except NoSuchStreamError:
            break
        if not ranges:
            break
        segs = tuple(SegmentRecord(segment_number(r.segment_id), segment_epoch(r.segment_id), 0, r.min_key,
                                   r.max_key) for r in ranges)
        epochs.append(EpochRecord(len(epochs), len(epochs), segs, 0))
    current = await controller.get_current_segments(scope, stream)
    head = await controller.get_head_segments(scope, stream)
    latest = epochs[-1]
    readable = segments_between(head, {}, epochs[0], latest, all_segments(epochs))
    infos: dict[int, SegmentInfo] = {}
    for seg in {s.id: s for s in [*readable, *latest.segments]}.values():
        info = await _segment_info(manager, qualified_segment_name(scope, stream, seg.id))
        if info is not None:
            infos[seg.id] = info
    s, r = config.scaling, config.retention
    return {
        "scope": scope,
        "stream": stream,
        "state": "ACTIVE" if current else "SEALED",
        "config": {
            "scaling": scaling_entry(int(s.scale_type), s.target_rate, s.scale_factor, s.min_num_segments),
            "retention": retention_entry(int(r.retention_type), r.retention_param, r.retention_max),
            "tags": list(config.tags),
            "rollover_size_bytes": config.rollover_size_bytes,
            "timestamp_aggregation_timeout_ms": config.timestamp_aggregation_timeout_ms,
        },
        "active_epoch": latest.epoch,
        "latest_epoch": latest.epoch,
        "segments": [segment_entry(seg, infos.get(seg.id)) for seg in latest.sorted_segments()],
        "epochs": epoch_history(epochs, times_known=False),
        "head": cut_entries(head),
        "tail": cut_entries({seg.id: infos[seg.id].length for seg in latest.segments if seg.id in infos}),
        "total_bytes": bytes_from_head(head, readable, infos),
        "retention": {"policy": retention_entry(int(r.retention_type), r.retention_param, r.retention_max),
                      "truncation": None, "recorded_cuts": None, "last_recorded_cut": None, "subscribers": None},
    }


def _print_table(console: Console, title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def _numbers(ids: list[int]) -> str:
    return " ".join(str(segment_number(i)) for i in ids)


def _cut_text(cut: list[dict[str, int]]) -> str:
    return ", ".join(f"{segment_number(e['segment'])}@{e['offset']}" for e in cut) or "-"


def _when(iso: str | None) -> str:
    return "?" if iso is None else iso.replace("T", " ").removesuffix("+00:00")


def render(d: dict[str, Any], console: Console | None = None) -> None:
    """Rich tables: a summary, the current segments and the epoch history."""
    console = console or Console()
    config = d["config"]
    scaling = config["scaling"]
    policy = scaling["type"] if scaling["type"] == "FIXED_NUM_SEGMENTS" else (
        f"{scaling['type']} target {scaling['target_rate']} factor {scaling['scale_factor']}")
    retention = config["retention"]
    ret = d["retention"]
    truncation = ret["truncation"]
    rows = [
        ["state", d["state"]],
        ["scaling", f"{policy}, min {scaling['min_segments']} segments"],
        ["retention", "none" if retention is None else f"{retention['type']} {retention['param']}"
                                                        f" (max {retention['max']})"],
        ["tags", ", ".join(config["tags"]) or "-"],
        ["active epoch", d["active_epoch"]],
        ["head", _cut_text(d["head"])],
        ["tail", _cut_text(d["tail"])],
        ["bytes from head to tail", d["total_bytes"]],
        ["last truncation", "unknown" if ret["recorded_cuts"] is None and truncation is None else
         "none" if truncation is None else _cut_text(truncation["cut"])
         + ("" if truncation.get("time") is None else f" at {_when(truncation['time'])}")],
    ]
    if ret["last_recorded_cut"] is not None:
        rows.append(["last retention cut", f"{ret['last_recorded_cut']['time']} "
                                           f"(size {ret['last_recorded_cut']['size']})"])
    if ret["subscribers"]:
        rows.append(["subscribers", ", ".join(ret["subscribers"])])
    _print_table(console, f"stream {d['scope']}/{d['stream']}", ["", ""], rows)
    _print_table(console, "segments (cuts and epochs below name segments by number)",
                 ["number", "epoch", "id", "key range", "start", "length", "sealed"], [
        [s["number"], s["epoch"], s["id"], f"[{s['key_start']:.4f}, {s['key_end']:.4f})",
         s["start_offset"], s["length"], s["sealed"]] for s in d["segments"]])
    _print_table(console, "epochs", ["epoch", "created (UTC)", "reason", "segments", "splits", "merges"], [
        [e["epoch"], _when(e["creation_time"]), e["reason"] or "?", _numbers(e["segments"]),
         "; ".join(f"{segment_number(x['segment'])} → {_numbers(x['into'])}" for x in e["splits"]) or "-",
         "; ".join(f"{_numbers(x['segments'])} → {segment_number(x['into'])}" for x in e["merges"]) or "-"]
        for e in d["epochs"]])
