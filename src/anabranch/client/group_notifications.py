"""Reader-group notifications: the number of segments to read changed (a scale), or all data was read.

``ReaderGroup.notifications()`` is an async iterator over them, driven by the group's shared state (polled
every ``poll_interval`` seconds, as Pravega's notifier polls its state synchronizer): a
``SegmentNotification`` first (the current count), then one whenever the number of segments the group reads
(held or unassigned) changes, and an ``EndOfDataNotification`` once every segment reached its end or the
ending stream cut, after which the iteration stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from anabranch.client.reader_group_state import ReaderGroupState
from anabranch.clock import SYSTEM_CLOCK, Clock


@dataclass(frozen=True, slots=True)
class SegmentNotification:
    """The group now reads ``segments`` segments with ``readers`` readers (Pravega's ``SegmentNotification``)."""

    segments: int
    readers: int


@dataclass(frozen=True, slots=True)
class EndOfDataNotification:
    """Every segment of the group was read to its end (sealed streams or ending stream cuts)."""


Notification = SegmentNotification | EndOfDataNotification


async def watch(fetch: Callable[[], Awaitable[ReaderGroupState]], poll_interval: float,
                clock: Clock = SYSTEM_CLOCK) -> AsyncIterator[Notification]:
    last: int | None = None
    while True:
        state = await fetch()
        if state.is_finished:
            yield EndOfDataNotification()
            return
        count = len(state.positions())
        if count != last:
            last = count
            yield SegmentNotification(count, len(state.readers))
        await clock.sleep(poll_interval)
