"""Writer marks for watermarking: ``noteTimestampFromWriter`` and ``removeWriter``.

A mark ``writer/<id>`` in the stream's table holds the writer's last time and position; times never go
back and positions never move backwards on any segment they share. ``watermarks.WatermarkJob`` folds these marks
into the watermarks it appends to the stream's ``_MARK`` segment.
"""

from __future__ import annotations

from collections.abc import Mapping

from anabranch.controller.context import ControllerContext
from anabranch.controller.errors import StreamNotFoundError

WRITER_PREFIX = "writer/"


class Writers:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx

    async def note_time(self, scope: str, stream: str, writer: str, position: Mapping[int, int],
                        timestamp: int) -> str:
        try:
            view = await self.ctx.view(scope, stream)
        except StreamNotFoundError:
            return "INTERNAL_ERROR"
        found = await view.table.get(WRITER_PREFIX + writer)
        version = -1
        if found is not None:
            mark, version = found
            if not mark.get("shutdown"):
                if timestamp < mark["time"]:
                    return "INVALID_TIME"
                old = {int(k): int(v) for k, v in mark["position"].items()}
                if any(position[s] < old[s] for s in position.keys() & old.keys()):
                    return "INVALID_POSITION"
        await view.table.put(WRITER_PREFIX + writer, {"time": timestamp, "position": dict(position)}, version)
        self.ctx.marked_streams.add((scope, stream))
        return "SUCCESS"

    async def remove(self, scope: str, stream: str, writer: str) -> str:
        try:
            view = await self.ctx.view(scope, stream)
        except StreamNotFoundError:
            return "STREAM_DOES_NOT_EXIST"
        found = await view.table.get(WRITER_PREFIX + writer)
        if found is None:
            return "UNKNOWN_WRITER"
        await view.table.remove(WRITER_PREFIX + writer)
        return "SUCCESS"
