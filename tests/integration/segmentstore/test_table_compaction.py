"""Table compaction through a real `anabranch segmentstore` process: one key updated 20 000 times keeps the table
segment's live window (length - start offset) bounded, the latest value and version stay readable, and a crash
and restart keeps them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from segmentstore_helpers import connect

from anabranch.client.connection import RawConnection, next_request_id
from anabranch.protocol.commands import (
    NO_VERSION,
    CreateTableSegment,
    GetTableSegmentInfo,
    ReadTable,
    ReadTableEntriesDelta,
    SegmentCreated,
    TableEntriesDeltaRead,
    TableEntriesUpdated,
    TableEntry,
    TableKey,
    TableKeyBadVersion,
    TableRead,
    TableSegmentInfo,
    UpdateTableEntries,
)
from anabranch.testing.processes import SegmentStoreProcess

pytestmark = pytest.mark.process
TABLE = "scope/compacted-table"
KEY = b"the-key"
UPDATES = 20_000
CONNECTIONS = 4
IN_FLIGHT = 64
VALUE = b"v" * 200
MIB = 1024 * 1024
BOUND = 2 * MIB + 64 * 1024  # default policy: compacts above 1 MiB by windows of 1 MiB


async def put(conn: RawConnection, value: bytes, version: int = NO_VERSION) -> TableEntriesUpdated | TableKeyBadVersion:
    reply = await conn.request(
        UpdateTableEntries(next_request_id(), TABLE, "", (TableEntry(TableKey(KEY, version), value),))
    )
    assert isinstance(reply, TableEntriesUpdated | TableKeyBadVersion), reply
    return reply


async def hammer(conn: RawConnection, count: int) -> None:
    for first in range(0, count, IN_FLIGHT):
        replies = await asyncio.gather(*(put(conn, VALUE) for _ in range(first, min(count, first + IN_FLIGHT))))
        assert all(isinstance(reply, TableEntriesUpdated) for reply in replies)


async def info(conn: RawConnection) -> TableSegmentInfo:
    reply = await conn.request(GetTableSegmentInfo(next_request_id(), TABLE))
    assert isinstance(reply, TableSegmentInfo), reply
    return reply


async def read(conn: RawConnection) -> TableEntry:
    reply = await conn.request(ReadTable(next_request_id(), TABLE, "", (TableKey(KEY),)))
    assert isinstance(reply, TableRead), reply
    return reply.entries[0]


async def settled_info(conn: RawConnection) -> TableSegmentInfo:
    """Compaction runs in the background after updates: wait (bounded) until the live window is within bounds."""
    async with asyncio.timeout(30):
        while (current := await info(conn)).length - current.start_offset > BOUND:
            await asyncio.sleep(0.05)
    return current


async def test_one_key_updated_20000_times_stays_bounded(tmp_path: Path) -> None:
    server = SegmentStoreProcess(tmp_path / "ss")
    with server:
        conns = [await connect(server) for _ in range(CONNECTIONS)]
        reply = await conns[0].request(CreateTableSegment(next_request_id(), TABLE))
        assert isinstance(reply, SegmentCreated), reply
        await asyncio.gather(*(hammer(conn, UPDATES // CONNECTIONS) for conn in conns))
        final = await put(conns[0], b"final value")
        assert isinstance(final, TableEntriesUpdated)
        [version] = final.updated_versions
        written = await settled_info(conns[0])
        assert written.start_offset > UPDATES * len(VALUE) - BOUND and written.entry_count == 1
        entry = await read(conns[0])
        assert entry.value == b"final value" and entry.key.version >= version
        delta = await conns[0].request(ReadTableEntriesDelta(next_request_id(), TABLE, "", 0, 10))
        assert isinstance(delta, TableEntriesDeltaRead), delta
        assert delta.should_clear and delta.last_position > written.start_offset
        [seen] = delta.entries
        assert seen.key.key == KEY and seen.value == b"final value" and seen.key.version >= entry.key.version
        stale = await put(conns[0], b"stale", version - 1)
        assert isinstance(stale, TableKeyBadVersion)
        for conn in conns:
            await conn.close()

        server.kill()
        server.restart()
        conn = await connect(server)
        recovered_entry = await read(conn)  # a background compaction may have copied it again before the kill
        assert recovered_entry.value == b"final value" and recovered_entry.key.version >= entry.key.version
        recovered = await info(conn)
        assert recovered.length - recovered.start_offset <= BOUND and recovered.entry_count == 1
        assert recovered.start_offset >= written.start_offset
        after = await put(conn, b"after restart", recovered_entry.key.version)
        assert isinstance(after, TableEntriesUpdated) and after.updated_versions[0] > recovered_entry.key.version
        await conn.close()
