"""What the live console draws, as JSON: ``GET /console/<scope>/<stream>/data`` (polled by the page).

``stream_view`` turns ``describe_stream``'s dict into the key-space drawing's data: every segment that ever
existed with its number (not its 64-bit id), key range and lifetime (from the time of the epoch that created
it to the time of the epoch that sealed it, or open while active), plus readable head and tail. Pure.

``GroupProbe`` reads reader groups through the Anabranch client against the server's own controller (the
group's state lives in the group's stream on the segment store, which the controller does not read): readers,
the segments each holds and the bytes each still has to read. ``ClusterInfo`` is the seam for cluster mode:
a callable returning ``{"hosts": [{"host", "containers": [...]}], ...}`` (from ZooKeeper's container map) or
None; the page shows a "cluster" section only when it returns data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from anabranch.model.names import segment_number

log = logging.getLogger(__name__)

ClusterInfo = Callable[[], Awaitable[dict[str, Any] | None]]
GROUP_PROBE_TIMEOUT = 5.0


def readable_cut(cut: list[Mapping[str, int]]) -> list[dict[str, Any]]:
    return [{"segment": segment_number(c["segment"]), "offset": c["offset"]} for c in cut]


def stream_view(description: Mapping[str, Any], ranges: Mapping[int, tuple[float, float]],
                now_ms: int) -> dict[str, Any]:
    """The drawing's data: epochs with times, every segment's lifetime and key range (``ranges`` by segment id,
    from the epoch records), head, tail, totals."""
    epochs = description["epochs"]
    born: dict[int, int] = {}
    sealed_at: dict[int, int] = {}
    for epoch in epochs:
        when = epoch["creation_time_ms"] or 0
        for seg_id in epoch["created"]:
            born.setdefault(seg_id, when)
        for seg_id in epoch["sealed"]:
            sealed_at.setdefault(seg_id, when)
    lengths = {s["id"]: s["length"] for s in description["segments"]}
    segments = []
    for seg_id, start in sorted(born.items(), key=lambda item: (item[1], segment_number(item[0]))):
        key_start, key_end = ranges.get(seg_id, (0.0, 1.0))
        segments.append({
            "id": seg_id, "number": segment_number(seg_id),
            "key_start": key_start, "key_end": key_end, "from_ms": start, "to_ms": sealed_at.get(seg_id),
            "active": seg_id not in sealed_at, "length": lengths.get(seg_id),
        })
    first = epochs[0]["creation_time_ms"] if epochs and epochs[0]["creation_time_ms"] else now_ms
    return {
        "scope": description["scope"], "stream": description["stream"], "state": description["state"],
        "now_ms": now_ms, "start_ms": first, "active_epoch": description["active_epoch"],
        "epochs": [{"epoch": e["epoch"], "time_ms": e["creation_time_ms"], "reason": e["reason"],
                    "splits": len(e["splits"]), "merges": len(e["merges"])} for e in epochs],
        "segments": segments,
        "head": readable_cut(description["head"]), "tail": readable_cut(description["tail"]),
        "total_bytes": description["total_bytes"],
    }


class GroupProbe:
    """Reader groups seen through the client (one ``StreamManager`` on the server's own controller URI)."""

    def __init__(self, controller_uri: str) -> None:
        self.controller_uri = controller_uri
        self._manager: Any = None

    async def _open(self) -> Any:
        if self._manager is None:
            from anabranch.client.config import ClientConfig
            from anabranch.client.stream_manager import StreamManager

            self._manager = StreamManager(ClientConfig(self.controller_uri, retry_attempts=1, retry_budget=3.0))
        return self._manager

    async def close(self) -> None:
        if self._manager is not None:
            manager, self._manager = self._manager, None
            await manager.close()

    async def reader_ids(self, scope: str, group: str) -> list[str]:
        try:
            async with asyncio.timeout(GROUP_PROBE_TIMEOUT):
                found = await (await self._open()).get_reader_group(scope, group)
                return sorted(await found.readers())
        except Exception as exc:
            log.info("cannot read the state of reader group %s/%s: %s", scope, group, exc)
            return []

    async def describe(self, scope: str, group: str) -> dict[str, Any]:
        """{name, readers: [{id, segments: [numbers], lag_bytes}], unassigned: [numbers], lag_bytes} or an error."""
        try:
            async with asyncio.timeout(GROUP_PROBE_TIMEOUT):
                found = await (await self._open()).get_reader_group(scope, group)
                state = await found.state()
                lags = await found.reader_lags(count_events=False)
                total = await found.lag(count_events=False)
        except Exception as exc:
            log.info("cannot read the state of reader group %s/%s: %s", scope, group, exc)
            return {"name": group, "error": f"{type(exc).__name__}: {exc}"}
        readers = [{"id": reader,
                    "segments": sorted(segment_number(s.segment_id) for s in state.segments_of(reader)),
                    "lag_bytes": lags[reader].bytes if reader in lags else None}
                   for reader in sorted(state.readers)]
        return {"name": group, "readers": readers,
                "unassigned": sorted(segment_number(s.segment_id) for s in state.unassigned),
                "lag_bytes": total.bytes}


def zk_cluster_info(zk: Any, paths: Any) -> ClusterInfo:
    """The console's cluster section from ZooKeeper (``anabranch.cluster.layout``): every registered segment
    store with its endpoint and the containers the container map gives it, plus what it reports running."""
    from anabranch.cluster.layout import ContainerMap, HostRecord

    async def info() -> dict[str, Any] | None:
        found = await zk.get_or_none(paths.container_map)
        assignment = ContainerMap.decode(found[0]).assignment if found is not None else {}
        registered = await zk.get_children(paths.hosts) if await zk.exists(paths.hosts) is not None else []
        hosts = []
        for host_id in sorted(set(registered) | set(assignment)):
            record = await zk.get_or_none(paths.host(host_id))
            endpoint = None
            if record is not None:
                decoded = HostRecord.decode(record[0])
                endpoint = f"{decoded.host}:{decoded.port}"
            hosts.append({"host": host_id, "endpoint": endpoint, "live": record is not None,
                          "containers": sorted(assignment.get(host_id, ()))})
        return {"root": paths.root, "hosts": hosts}

    return info
