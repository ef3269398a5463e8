"""The recorder's adapters to a running segment store.

``TableScaleReporter`` is the production reporter: it puts each ``ScaleRequest`` into the system table
segment ``AUTOSCALE_TABLE`` through the segment store's ``TableStore`` (key = qualified segment name, so a
newer request for a segment replaces the older one). The controller's ``AutoScaler`` polls that table and
removes what it handled. The table is created on first use (creating it twice is harmless).
``store_policy_lookup`` reads a segment's scaling policy from the store's metadata (after a restart).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from anabranch.protocol.commands import NO_VERSION, NULL_TABLE_SEGMENT_OFFSET
from anabranch.segmentstore.errors import NoSuchSegmentError, SegmentExistsError
from anabranch.segmentstore.stats.recorder import PolicyLookup
from anabranch.segmentstore.stats.requests import AUTOSCALE_TABLE, ScaleRequest

if TYPE_CHECKING:
    from anabranch.segmentstore.store import SegmentStore
    from anabranch.segmentstore.tables import TableStore

log = logging.getLogger(__name__)


class TableScaleReporter:
    def __init__(self, tables: TableStore, table: str = AUTOSCALE_TABLE) -> None:
        self.tables = tables
        self.table = table
        self._created = False

    async def __call__(self, request: ScaleRequest) -> None:
        entry = [(request.key(), request.encode(), NO_VERSION)]
        if not self._created:
            await self._create()
        try:
            await self.tables.update(self.table, entry, NULL_TABLE_SEGMENT_OFFSET)
        except NoSuchSegmentError:
            await self._create()
            await self.tables.update(self.table, entry, NULL_TABLE_SEGMENT_OFFSET)

    async def _create(self) -> None:
        try:
            await self.tables.create_table(self.table)
            log.info("created the auto-scale request table %s", self.table)
        except SegmentExistsError:
            pass
        self._created = True


def store_policy_lookup(store: SegmentStore) -> PolicyLookup:
    """A ``PolicyLookup`` reading (scale type, target rate) from the segment's metadata."""

    async def lookup(segment: str) -> tuple[int, int] | None:
        try:
            info = await store.get_info(segment)
        except NoSuchSegmentError:
            return None
        if info.deleted or info.sealed or info.is_table:
            return None
        return info.scale_type, info.target_rate

    return lookup
