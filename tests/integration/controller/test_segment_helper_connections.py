"""The controller's segment helper behaves the same over TCP and over an in-process connection (what a standalone
uses): the same replies, the same errors, the same token checks and conditional-update checks, against one real
segment store (in memory) served both ways at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anabranch.auth.server import ServerAuth
from anabranch.controller.errors import (
    BadOffsetError,
    NoSuchSegmentError,
    SegmentStoreError,
    SegmentStoreUnavailableError,
    TableNotEmptyError,
    WriteConflictError,
)
from anabranch.controller.segment_helper import SegmentHelper
from anabranch.protocol import commands as c
from anabranch.protocol.commands import NO_VERSION, NOT_EXISTS
from anabranch.retry import RetryPolicy
from anabranch.segmentstore.service import SegmentStoreService
from anabranch.segmentstore.store import SegmentStore

QUICK = RetryPolicy(initial_delay=0.01, max_delay=0.05, budget=1.0)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[SegmentStoreService]:
    store = SegmentStoreService(tmp_path, "127.0.0.1", 0, container_count=2, durable=False,
                                auth=ServerAuth.create(enabled=True, authenticates=False))
    await store.start()
    try:
        yield store
    finally:
        await store.stop()


def helper(service: SegmentStoreService, kind: str, token: str | None = None) -> SegmentHelper:
    auth = service.auth
    assert auth is not None
    connect = service.local_connector() if kind == "local" else None
    return SegmentHelper(service.host, service.port, token=lambda: token if token is not None else auth.system_token(),
                         connect=connect, timeout=5.0, retry=QUICK)


@pytest.mark.parametrize("kind", ["tcp", "local"])
async def test_same_behaviour_over_tcp_and_in_process(service: SegmentStoreService, kind: str) -> None:
    ops = helper(service, kind)
    try:
        seg, table = f"sc/st-{kind}/0.#epoch.0", f"_system/_tables/t-{kind}"
        await ops.create_segment(seg, 1, 100)
        await ops.create_segment(seg)  # creating a segment that exists is fine
        await store_of(service).append(seg, b"hello world")
        assert await ops.read_segment(seg, 0, 100) == b"hello world"  # a read: the handler's own frames
        assert await ops.read_segment(seg, 6, 3) == b"wor"
        await ops.truncate_segment(seg, 6)
        with pytest.raises(BadOffsetError):
            await ops.read_segment(seg, 0, 5)
        await ops.seal_segment(seg)
        await ops.seal_segment(seg)  # sealing a sealed one is fine
        info = await ops.get_segment_info(seg)
        assert (info.length, info.start_offset, info.sealed) == (11, 6, True)
        await ops.delete_segment(seg)
        await ops.delete_segment(seg)  # deleting a missing one is fine
        with pytest.raises(NoSuchSegmentError):
            await ops.get_segment_info(seg)

        assert await ops.create_table(table)
        assert not await ops.create_table(table)  # it exists: created already
        (v1,) = await ops.update_table(table, [(b"k", b"v1", NOT_EXISTS)])
        with pytest.raises(WriteConflictError):
            await ops.update_table(table, [(b"k", b"again", NOT_EXISTS)])
        with pytest.raises(WriteConflictError):  # all or nothing: the good entry is not written either
            await ops.update_table(table, [(b"j", b"new", NO_VERSION), (b"k", b"v2", v1 + 1000)])
        (v2,) = await ops.update_table(table, [(b"k", b"v2", v1)])
        assert await ops.read_table(table, [b"k", b"j"]) == [(b"v2", v2), None]
        entries, _token = await ops.read_entries(table, b"", 10)
        assert entries == [(b"k", b"v2", v2)]
        with pytest.raises(TableNotEmptyError):
            await ops.delete_table(table, must_be_empty=True)
        await ops.remove_keys(table, [(b"k", v2)])
        await ops.delete_table(table, must_be_empty=True)
        with pytest.raises(NoSuchSegmentError):
            await ops.read_table(table, [b"k"])
        results = await asyncio.gather(*(ops.create_table(f"{table}-{i}") for i in range(20)))
        assert results == [True] * 20  # concurrent requests share one connection (each table is new)
    finally:
        await ops.close()
    refused = helper(service, kind, token="not-a-token")
    try:
        with pytest.raises(SegmentStoreError, match="token"):
            await refused.create_segment(f"sc/refused-{kind}/0.#epoch.0")
    finally:
        await refused.close()


def store_of(service: SegmentStoreService) -> SegmentStore:
    assert service.store is not None
    return service.store


async def test_an_in_process_connection_fails_like_a_lost_one_when_the_store_stops(tmp_path: Path) -> None:
    service = SegmentStoreService(tmp_path, "127.0.0.1", 0, container_count=1, durable=False)
    await service.start()
    ops = SegmentHelper(service.host, service.port, connect=service.local_connector(), timeout=2.0, retry=QUICK)
    await ops.create_table("_system/_tables/x")
    await service.stop()
    with pytest.raises(SegmentStoreUnavailableError):
        await ops.read_table("_system/_tables/x", [b"k"])
    await ops.close()


async def test_an_unanswered_in_process_request_times_out_and_the_connection_stays_usable(tmp_path: Path) -> None:
    service = SegmentStoreService(tmp_path, "127.0.0.1", 0, container_count=1, durable=False)
    await service.start()
    try:
        conn = await service.local_connector()(service.host, service.port)
        answering = conn._handler.handle
        conn._handler.handle = lambda cmd: None  # type: ignore[method-assign]  # a handler that never replies
        with pytest.raises(TimeoutError, match="no reply"):
            await conn.request(c.GetStreamSegmentInfo(1, "sc/st/0.#epoch.0", ""), timeout=0.05)
        conn._handler.handle = answering  # type: ignore[method-assign]
        reply = await conn.request(c.GetStreamSegmentInfo(1, "sc/st/0.#epoch.0", ""), timeout=5.0)
        assert isinstance(reply, c.NoSuchSegment)  # the same request id is free again: nothing left pending
        await conn.close()
    finally:
        await service.stop()
