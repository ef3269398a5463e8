"""Bytes appended to a table segment behind the table store's back are quarantined when the index is rebuilt:
reported once (log, ``SegmentStore.health()``), skipped, and every entry before and after them still serves
(issue 10, case 9, at the table-store level)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from anabranch.protocol.commands import NO_VERSION
from anabranch.segmentstore.store import open_segment_store
from anabranch.segmentstore.tables import TableStore
from anabranch.segmentstore.tables.records import MAGIC, RecordKind, encode_batch

TABLE = "_system/_tables/scopes"
GARBAGE = [
    b"\x00" * 48,
    bytes(range(48)),
    MAGIC.to_bytes(4, "big") + b"\xff" * 44,  # a batch header whose length runs past the end
    encode_batch([(RecordKind.PUT, b"k", b"v")], 0)[0][:-3],  # a batch cut short
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=["zeros", "bytes", "bad-header", "cut-batch"])
async def test_garbage_in_a_table_is_quarantined_and_the_rest_serves(
    tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_segment_store(tmp_path, 2)
    try:
        tables = TableStore(store)
        await tables.create_table(TABLE)
        await tables.update(TABLE, [(b"a", b"1", NO_VERSION), (b"b", b"2", NO_VERSION)], -1)
        bad_offset = (await store.get_info(TABLE)).length
        await store.append(TABLE, garbage)
        with caplog.at_level(logging.ERROR, logger="anabranch.segmentstore.health"):
            await tables.update(TABLE, [(b"c", b"3", NO_VERSION)], -1)  # the stale index is reloaded
            await tables.update(TABLE, [(b"a", b"1b", NO_VERSION)], -1)
            restarted = TableStore(store)
            found = await restarted.get(TABLE, [b"a", b"b", b"c"])
            assert [hit[1] if hit else None for hit in found] == [b"1b", b"2", b"3"]
            delta = await restarted.read_delta(TABLE, 0, 100)
            assert sorted(key for key, _, _ in delta.entries) == [b"a", b"b", b"c"]
        quarantined = store.health().quarantined
        assert [(q.segment, q.offset, q.length) for q in quarantined] == [(TABLE, bad_offset, len(garbage))]
        assert store.health().ready
        assert sum("quarantined" in r.getMessage() for r in caplog.records) == 1
    finally:
        await store.close()


async def test_delta_reads_of_a_table_holding_only_garbage(tmp_path: Path) -> None:
    """Found by the wire fuzzer: a delta read of a segment with no valid batch failed with IndexError."""
    store = await open_segment_store(tmp_path, 2)
    try:
        tables = TableStore(store)
        await store.create_segment("fz/plain/0.#epoch.0")
        await store.append("fz/plain/0.#epoch.0", b"not a table batch at all")
        for position in (0, 5, 24):
            delta = await tables.read_delta("fz/plain/0.#epoch.0", position, 10)
            assert delta.entries == [] and delta.reached_end
        assert len(store.health().quarantined) == 1
    finally:
        await store.close()


async def test_delta_read_after_the_table_was_recreated_behind_the_index(tmp_path: Path) -> None:
    """Found by the wire fuzzer: a cached index longer than the re-created segment made the scan find no data."""
    store = await open_segment_store(tmp_path, 2)
    try:
        tables = TableStore(store)
        await tables.create_table("fz/t_kvtable/0.#epoch.0")
        await tables.update("fz/t_kvtable/0.#epoch.0", [(b"k" * 50, b"v" * 50, NO_VERSION)], -1)
        assert len((await tables.read_delta("fz/t_kvtable/0.#epoch.0", 0, 10)).entries) == 1
        await store.delete("fz/t_kvtable/0.#epoch.0")
        await store.create_segment("fz/t_kvtable/0.#epoch.0")
        await store.append("fz/t_kvtable/0.#epoch.0", b"short")
        delta = await tables.read_delta("fz/t_kvtable/0.#epoch.0", 0, 10)
        assert delta.entries == [] and delta.reached_end
    finally:
        await store.close()
