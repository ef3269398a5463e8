"""Reader groups: create, inspect, checkpoint, reset and delete; the shared state behind the readers.

A reader group's state (``ReaderGroupState``) lives in the table segment ``<scope>/_RG<group>_kvtable/0.#epoch.0``
through a ``StateSynchronizer`` (conditional updates): key ``state`` holds the reducer state, key ``config``
the configuration. The name cannot collide with the official Rust client's ``<scope>/<group>_kvtable`` table or
with Java's ``_RG<group>`` stream. Creating a group also registers it with the controller (``createReaderGroup``)
so Java-style metadata exists; a controller without that rpc only earns a warning.

Starting positions: an unbounded starting cut means the stream's head (``getSegments``); ``read_from_tail``
means the current segments at their write offsets. Ending cuts bound segments; unbounded means no end.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import cbor2

from anabranch.client.batch import BatchClient
from anabranch.client.controller_client import ControllerClient, ControllerReaderGroupConfig
from anabranch.client.errors import ClientError, NoSuchReaderGroupError, OperationTimeoutError, VersionConflictError
from anabranch.client.event_reader import EventStreamReader
from anabranch.client.group_notifications import Notification, watch
from anabranch.client.lag import NO_LAG, Lag, segments_lag, stream_lag
from anabranch.client.reader_group_config import (
    _RETENTION_TYPES,
    RETENTION_AUTOMATIC,
    RETENTION_NONE,
    Position,
    ReaderGroupConfig,
    stream_cuts,
)
from anabranch.client.reader_group_state import Checkpoint, ReaderGroupState
from anabranch.client.segment_reader import SegmentRouter
from anabranch.client.state_synchronizer import RevisionedTableClient, StateSynchronizer, synchronizer_segment
from anabranch.client.stream_positions import segment_info, tail_positions
from anabranch.client.table_client import NOT_EXISTS, TableSegmentClient
from anabranch.clock import Clock
from anabranch.model.names import READER_GROUP_STREAM_PREFIX, ScopedSegment, validate_name
from anabranch.model.stream_cut import StreamCut

log = logging.getLogger(__name__)

CONFIG_KEY = b"config"
POLL_INTERVAL = 0.05


class StateCodec:
    """CBOR for ``ReaderGroupState``."""

    def serialize(self, state: ReaderGroupState) -> bytes:
        return cbor2.dumps(state.to_dict())

    def deserialize(self, data: bytes) -> ReaderGroupState:
        return ReaderGroupState.from_dict(cbor2.loads(data))


def state_segment(scope: str, group: str) -> str:
    return synchronizer_segment(scope, READER_GROUP_STREAM_PREFIX + group)


class ReaderGroup:
    """A handle on an existing reader group. Readers are created with ``create_reader``."""

    def __init__(self, scope: str, name: str, config: ReaderGroupConfig, controller: ControllerClient,
                 router: SegmentRouter, synchronizer: StateSynchronizer[ReaderGroupState]) -> None:
        self.scope = scope
        self.name = name
        self.config = config
        self.controller = controller
        self.router = router
        self.synchronizer = synchronizer

    @property
    def table(self) -> TableSegmentClient:
        return self.synchronizer.client.table

    @property
    def clock(self) -> Clock:
        """The client's clock (``ClientConfig.clock``, carried by its retry policy): refreshes, read timeouts and
        checkpoint waits follow it."""
        return self.router.policy.clock

    async def state(self) -> ReaderGroupState:
        await self.synchronizer.fetch_updates()
        return self.synchronizer.state

    async def create_reader(self, reader_id: str, serializer: Any = None) -> EventStreamReader[Any]:
        """A new ``EventStreamReader`` named ``reader_id`` in this group (``serializer`` defaults to bytes)."""
        return await EventStreamReader.join(self, reader_id, serializer)

    async def readers(self) -> frozenset[str]:
        return (await self.state()).readers

    async def reader_offline(self, reader_id: str, last_position: Position | None = None) -> None:
        """Removes a reader (e.g. one that crashed); its segments go back at ``last_position`` or its last update."""
        offsets = last_position.offsets if last_position else None
        await self.synchronizer.update_state(lambda s: (s.remove_reader(reader_id, offsets), None))

    async def initiate_checkpoint(self, name: str, timeout: float = 60.0) -> Checkpoint:
        """Starts checkpoint ``name`` and waits until every reader reached it (readers must keep reading)."""
        await self.synchronizer.update_state(lambda s: (s.create_checkpoint(name), None))
        checkpoint = await self.wait_for_checkpoint(name, timeout)
        if self.config.retention == RETENTION_AUTOMATIC:
            await self.update_retention_stream_cut(stream_cuts(checkpoint.positions).values())
        return checkpoint

    async def update_retention_stream_cut(self, cuts: Iterable[StreamCut]) -> None:
        """Acknowledge that this subscriber group no longer needs the data before ``cuts`` (one per stream), so
        consumption-based retention may truncate up to there (never further than the stream's own policy)."""
        if self.config.retention == RETENTION_NONE:
            raise ClientError(f"reader group {self.scope}/{self.name} is not a subscriber (retention 'none')")
        stored = await self.controller.get_reader_group_config(self.scope, self.name)
        for cut in cuts:
            await self.controller.update_subscriber_stream_cut(f"{self.scope}/{self.name}", stored.reader_group_id,
                                                               stored.generation, cut)

    async def wait_for_checkpoint(self, name: str, timeout: float) -> Checkpoint:
        clock = self.clock
        deadline = clock.monotonic() + timeout
        while True:
            done = (await self.state()).checkpoint(name)
            if done is not None:
                return done
            if clock.monotonic() > deadline:
                raise OperationTimeoutError(
                    f"checkpoint {name!r} of {self.scope}/{self.name} not reached by every reader in {timeout} s"
                )
            await clock.sleep(POLL_INTERVAL)

    async def get_stream_cuts(self) -> dict[tuple[str, str], StreamCut]:
        """The group's current position per stream (what the readers have read and reported); segments waiting
        for predecessors appear at offset -1, as Pravega's well-formed cuts have them."""
        return stream_cuts((await self.state()).cut_positions())

    async def get_head_stream_cuts(self) -> dict[tuple[str, str], StreamCut]:
        cuts = {}
        for start in self.config.starting_cuts:
            head = await self.controller.get_head_segments(start.scope, start.stream)
            cuts[(start.scope, start.stream)] = StreamCut(start.scope, start.stream, head)
        return cuts

    async def get_tail_stream_cuts(self) -> dict[tuple[str, str], StreamCut]:
        cuts = {}
        for start in self.config.starting_cuts:
            tail = await tail_positions(self.controller, self.router, start.scope, start.stream)
            cuts[(start.scope, start.stream)] = StreamCut(start.scope, start.stream, tail)
        return cuts

    async def unread_bytes(self) -> int:
        """Bytes between the group's positions and the tails (approximate across several scales)."""
        positions = (await self.state()).positions()
        total = 0
        known = set(positions)
        for segment, offset in positions.items():
            info = await segment_info(self.router, segment.qualified_name)
            if info is not None:
                total += max(0, info.write_offset - max(offset, info.start_offset))
        for start in self.config.starting_cuts:
            for current in await self.controller.get_current_segments(start.scope, start.stream):
                segment = ScopedSegment(start.scope, start.stream, current.segment_id)
                if segment not in known:
                    info = await segment_info(self.router, segment.qualified_name)
                    if info is not None:
                        total += info.write_offset - info.start_offset
        return total

    def notifications(self, poll_interval: float = 0.5) -> AsyncIterator[Notification]:
        """Segment-count changes and end of data, as an async iterator (see ``group_notifications``)."""
        return watch(self.state, poll_interval, self.clock)

    async def lag(self, *, count_events: bool = True) -> Lag:
        """Exact events and bytes between the group's positions (as its readers last reported them, at most
        ``group_refresh_time`` old) and the tails or ending cuts, successors not yet reached included."""
        state = await self.state()
        batch = BatchClient(self.controller, self.router)
        ends = {(c.scope, c.stream): c for c in self.config.ending_cuts}
        positions = state.positions()
        total = NO_LAG if count_events else Lag(-1, 0)
        for start in self.config.starting_cuts:
            mine = {s.segment_id: o for s, o in positions.items()
                    if (s.scope, s.stream) == (start.scope, start.stream) and o >= 0}
            if mine:
                cut = StreamCut(start.scope, start.stream, mine)
                total = total + await stream_lag(batch, cut, ends.get((start.scope, start.stream)),
                                                 count_events=count_events)
        return total

    async def reader_lags(self, *, count_events: bool = True) -> dict[str, Lag]:
        """Per reader: exact events and bytes between its reported positions and the ends of the segments it
        holds (successors it has not acquired yet are in ``lag()``, not here)."""
        state = await self.state()
        batch = BatchClient(self.controller, self.router)
        return {reader: await segments_lag(batch, state.segments_of(reader), state.end_offsets,
                                           count_events=count_events)
                for reader in sorted(state.readers)}

    async def reset_to(self, target: Checkpoint | Iterable[StreamCut]) -> None:
        """Restarts the group from a checkpoint or stream cuts; current readers must be recreated."""
        if isinstance(target, Checkpoint):
            fresh = ReaderGroupState.initial(target.positions, self.synchronizer.state.end_offsets, target.completed)
        else:
            config = ReaderGroupConfig(tuple(target), self.config.ending_cuts, False, self.config.group_refresh_time,
                                       self.config.automatic_checkpoint_interval)
            fresh = await initial_state(self.controller, self.router, config)
        await self.synchronizer.update_state(lambda _s: (fresh, None))

    async def delete(self) -> None:
        await delete_group(self.controller, self.router, self.scope, self.name)


async def initial_state(controller: ControllerClient, router: SegmentRouter,
                        config: ReaderGroupConfig) -> ReaderGroupState:
    positions: dict[ScopedSegment, int] = {}
    for cut in config.starting_cuts:
        if config.read_from_tail:
            start = await tail_positions(controller, router, cut.scope, cut.stream)
        elif cut.is_unbounded:
            start = await controller.get_head_segments(cut.scope, cut.stream)
        else:
            start = dict(cut.positions)
        positions.update({ScopedSegment(cut.scope, cut.stream, s): o for s, o in start.items()})
    ends = {
        ScopedSegment(cut.scope, cut.stream, s): o
        for cut in config.ending_cuts
        for s, o in cut.positions.items()
        if o >= 0
    }
    return ReaderGroupState.initial(positions, ends)


def _synchronizer(router: SegmentRouter, scope: str, name: str) -> StateSynchronizer[ReaderGroupState]:
    table = TableSegmentClient(router, state_segment(scope, name))
    return StateSynchronizer(RevisionedTableClient(table), StateCodec())


async def create_group(controller: ControllerClient, router: SegmentRouter, scope: str, name: str,
                       config: ReaderGroupConfig) -> tuple[ReaderGroup, bool]:
    """Creates the group, or opens it if it exists (keeping its stored state and configuration); True if this call
    created it. The configuration is written first (must-not-exist), then the initial state, so concurrent
    creators agree on one configuration and a creator that died half-way is completed by the next one."""
    validate_name("reader group", name, allow_internal=False)
    sync = _synchronizer(router, scope, name)
    await sync.client.create()
    try:
        await sync.client.table.put(CONFIG_KEY, cbor2.dumps(config.to_dict()), NOT_EXISTS)
        created = True
    except VersionConflictError:
        stored = await sync.client.table.get(CONFIG_KEY)
        if stored is None:
            raise NoSuchReaderGroupError(f"reader group {scope}/{name} was deleted while being created") from None
        config, created = ReaderGroupConfig.from_dict(cbor2.loads(stored.value)), False
    if await sync.client.read() is None:
        if created:
            await _register_with_controller(controller, scope, name, config)
        await sync.initialize(await initial_state(controller, router, config))
    else:
        await sync.fetch_updates()
    return ReaderGroup(scope, name, config, controller, router, sync), created


async def open_group(controller: ControllerClient, router: SegmentRouter, scope: str, name: str) -> ReaderGroup:
    sync = _synchronizer(router, scope, name)
    stored = await sync.client.table.get(CONFIG_KEY) if await _exists(sync) else None
    if stored is None:
        raise NoSuchReaderGroupError(f"reader group {scope}/{name} does not exist: create it first")
    await sync.fetch_updates()
    return ReaderGroup(scope, name, ReaderGroupConfig.from_dict(cbor2.loads(stored.value)), controller, router, sync)


async def _exists(sync: StateSynchronizer[ReaderGroupState]) -> bool:
    return await sync.client.read() is not None


async def delete_group(controller: ControllerClient, router: SegmentRouter, scope: str, name: str) -> bool:
    """Deletes the group's state and controller metadata; False if there was no state."""
    deleted = await TableSegmentClient(router, state_segment(scope, name)).delete()
    try:
        stored = await controller.get_reader_group_config(scope, name)
        await controller.delete_reader_group(scope, name, stored.reader_group_id, stored.generation)
    except ClientError as exc:
        log.debug("controller metadata of reader group %s/%s not deleted: %s", scope, name, exc)
    return deleted


async def _register_with_controller(controller: ControllerClient, scope: str, name: str,
                                    config: ReaderGroupConfig) -> None:
    cuts: Sequence[StreamCut] = config.starting_cuts
    try:
        await controller.create_reader_group(ControllerReaderGroupConfig(
            scope, name, tuple(cuts), config.ending_cuts,
            group_refresh_ms=int(config.group_refresh_time * 1000),
            checkpoint_interval_ms=int((config.automatic_checkpoint_interval or 0) * 1000),
            retention_type=_RETENTION_TYPES[config.retention],
        ))
    except ClientError as exc:
        log.warning("the controller did not record reader group %s/%s (%s); reading works without it", scope, name,
                    exc)


class ReaderGroupManager:
    """Creates, opens and deletes reader groups (``StreamManager`` delegates here)."""

    def __init__(self, controller: ControllerClient, router: SegmentRouter) -> None:
        self.controller = controller
        self.router = router

    async def create_reader_group(self, scope: str, name: str, config: ReaderGroupConfig) -> ReaderGroup:
        group, _ = await create_group(self.controller, self.router, scope, name, config)
        return group

    async def get_reader_group(self, scope: str, name: str) -> ReaderGroup:
        return await open_group(self.controller, self.router, scope, name)

    async def delete_reader_group(self, scope: str, name: str) -> bool:
        return await delete_group(self.controller, self.router, scope, name)
