"""Shared plumbing of the controller workflows: the metadata store, the clock, per-stream locks, and
loading one stream's current records.

``StreamView`` is a snapshot of one stream's records with their versions, read fresh from the
table segments; the locks only serialise workflows inside this process (the versions protect the
records themselves). A lock exists only while a workflow holds or waits for it, so idle streams cost no memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from anabranch.controller.epochs import EpochRecord, SegmentRecord
from anabranch.controller.errors import IllegalStateError, NoSuchSegmentError, StreamNotFoundError
from anabranch.controller.metadata import MetadataStore, Table
from anabranch.controller.records import ScaleTransition, StreamConfiguration, StreamState
from anabranch.controller.segment_helper import SegmentStoreOps
from anabranch.model.names import qualified_segment_name

Clock = Callable[[], float]


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class StreamView:
    scope: str
    stream: str
    table: Table
    config: StreamConfiguration
    state: StreamState
    state_version: int
    active: int
    latest: int
    next_number: int
    pointer_version: int
    transition: ScaleTransition | None
    transition_version: int

    def segment_name(self, seg_id: int) -> str:
        return qualified_segment_name(self.scope, self.stream, seg_id)

    def pointer(self, **changes: int) -> dict[str, int]:
        record = {"active": self.active, "latest": self.latest, "next": self.next_number}
        record.update(changes)
        return record


class _Lock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class ControllerContext:
    """What every workflow needs: the segment store, the metadata, clocks and locks."""

    def __init__(self, ops: SegmentStoreOps, *, monotonic: Clock = time.monotonic,
                 wall_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.ops = ops
        self.store = MetadataStore(ops)
        self.monotonic = monotonic
        self.wall_ms = wall_ms
        self._locks: dict[tuple[str, str], _Lock] = {}
        self.marked_streams: set[tuple[str, str]] = set()
        self.unfinished: set[tuple[str, str]] = set()
        """Scope/name pairs whose workflow raised under its lock (the periodic sweep resumes these)."""
        """Streams whose writers noted a time since this controller started (the watermark job visits these)."""

    @contextlib.asynccontextmanager
    async def lock(self, scope: str, name: str) -> AsyncIterator[None]:
        """Run one workflow at a time on ``scope/name`` (``name`` "" for the scope itself)."""
        key = (scope, name)
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _Lock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        except BaseException:
            self.unfinished.add(key)
            raise
        finally:
            entry.users -= 1
            if not entry.users and self._locks.get(key) is entry:
                del self._locks[key]

    @property
    def held_locks(self) -> int:
        """How many scope/stream locks exist (held or waited for) right now."""
        return len(self._locks)

    async def view(self, scope: str, stream: str) -> StreamView:
        """The stream's records; ``StreamNotFoundError`` if it has none."""
        table = self.store.stream_table(scope, stream)
        try:
            found = await table.get_many(["config", "state", "epochs", "transition"])
        except NoSuchSegmentError:
            raise StreamNotFoundError(f"stream {scope}/{stream} does not exist") from None
        config, state, pointer, transition = found
        if config is None or state is None or pointer is None:
            raise StreamNotFoundError(f"stream {scope}/{stream} does not exist")
        raw_pointer: dict[str, Any] = pointer[0]
        return StreamView(
            scope, stream, table, StreamConfiguration.decode(config[0]), StreamState(state[0]["state"]), state[1],
            int(raw_pointer["active"]), int(raw_pointer["latest"]), int(raw_pointer["next"]), pointer[1],
            None if transition is None else ScaleTransition.decode(transition[0]),
            -1 if transition is None else transition[1],
        )

    async def epoch(self, view: StreamView, epoch: int) -> EpochRecord:
        record = await self.store.epoch(view.scope, view.stream, epoch)
        if record is None:
            raise IllegalStateError(f"stream {view.scope}/{view.stream} has no epoch {epoch}")
        return record

    async def all_epochs(self, view: StreamView) -> list[EpochRecord]:
        return await self.store.epochs(view.scope, view.stream, 0, view.latest)

    async def set_state(self, view: StreamView, state: StreamState) -> None:
        view.state_version = await view.table.put("state", {"state": state.value}, view.state_version)
        view.state = state

    async def active_segments(self, view: StreamView) -> list[SegmentRecord]:
        if view.state is StreamState.CREATING:
            raise IllegalStateError(f"stream {view.scope}/{view.stream} is still being created")
        if view.state is StreamState.SEALED:
            return []
        return (await self.epoch(view, view.active)).sorted_segments()
