"""Auto-scale requests in a cluster: the request table's container may run on another segment store.

``ClusterScaleReporter`` writes each ``ScaleRequest`` through the local ``TableScaleReporter`` when the table's
container runs here, and otherwise over the wire to the segment store the container map names as its owner
(creating the table there on first use). A request that cannot be delivered (no owner right now, the owner
moving) raises; the statistics recorder logs it and reports the segment again at its next report interval,
as it would after any failed report.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from anabranch.client.connection import RawConnection, next_request_id
from anabranch.errors import ConnectionFailedError
from anabranch.protocol.commands import (
    NULL_TABLE_SEGMENT_OFFSET,
    CreateTableSegment,
    NoSuchSegment,
    SegmentAlreadyExists,
    SegmentCreated,
    TableEntriesUpdated,
    TableEntry,
    TableKey,
    UpdateTableEntries,
)
from anabranch.segmentstore.errors import ContainerNotOwnedError
from anabranch.segmentstore.stats.reporter import TableScaleReporter
from anabranch.segmentstore.stats.requests import ScaleRequest
from anabranch.segmentstore.store import SegmentStore

log = logging.getLogger(__name__)

Locate = Callable[[int], Awaitable[tuple[str, int] | None]]
"""``locate(container_id)``: the wire endpoint of the container's owner, None if it has none now."""

REQUEST_TIMEOUT = 10.0


class ClusterScaleReporter:
    """A ``ScaleReporter`` that finds the auto-scale table wherever its container runs."""

    def __init__(self, local: TableScaleReporter, store: SegmentStore, locate: Locate,
                 token: Callable[[], str] = lambda: "") -> None:
        self.local = local
        self._token = token
        """The delegation token of each request (a system token: ``_system`` tables are internal)."""
        self.table = local.table
        self._store = store
        self._locate = locate
        self.remote_reports = 0

    async def __call__(self, request: ScaleRequest) -> None:
        container_id = self._store.container_id(self.table)
        if self._store.running(container_id) is not None:
            await self.local(request)
            return
        endpoint = await self._locate(container_id)
        if endpoint is None:
            raise ContainerNotOwnedError(self.table, container_id)
        await self._report_remote(endpoint, request)
        self.remote_reports += 1

    async def _report_remote(self, endpoint: tuple[str, int], request: ScaleRequest) -> None:
        host, port = endpoint
        conn = await RawConnection.connect(host, port, timeout=REQUEST_TIMEOUT)
        try:
            entries = (TableEntry(TableKey(request.key()), request.encode()),)
            for _ in range(2):
                reply = await conn.request(UpdateTableEntries(next_request_id(), self.table, self._token(), entries,
                                                              NULL_TABLE_SEGMENT_OFFSET), timeout=REQUEST_TIMEOUT)
                if isinstance(reply, TableEntriesUpdated):
                    return
                if not isinstance(reply, NoSuchSegment):
                    break
                created = await conn.request(CreateTableSegment(next_request_id(), self.table, self._token()),
                                             timeout=REQUEST_TIMEOUT)
                if not isinstance(created, SegmentCreated | SegmentAlreadyExists):
                    reply = created
                    break
                log.info("created the auto-scale request table %s on %s:%d", self.table, host, port)
            raise ConnectionFailedError(f"segment store {host}:{port} answered {type(reply).__name__} to an "
                                        f"auto-scale report into {self.table}")
        finally:
            await conn.close()
