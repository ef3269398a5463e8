"""Fault injection through a real in-process segment store and controller and our client: under each fault the
client's documented behaviour holds: it retries, no acknowledged event is lost, each is read exactly once and in
order per routing key."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from testing_kit_rig import Clocked, clocked_standalone

from anabranch.client import StreamManager
from anabranch.client.errors import SegmentStoreError
from anabranch.clock import SYSTEM_CLOCK
from anabranch.segmentstore.store import container_id_for
from anabranch.testing.faults import Faults, crash_and_restart, fill_disk, small_filesystem
from anabranch.testing.load import (
    LoadWriter,
    check_exactly_once_in_key_order,
    new_stream,
    read_everything,
)
from anabranch.testing.processes import Standalone

Rig = tuple[Clocked, Faults]


async def load_through(rig: Clocked, fault: object, *, before: int = 100, after: int = 300) -> None:
    """Writes under load; once ``before`` events are acked runs ``fault()`` (awaiting it if it is a coroutine
    function); once ``after`` are acked stops and checks exactly-once in key order."""
    scope, stream = await new_stream(rig.manager)
    writer = LoadWriter(rig.manager, scope, stream, rate=1000)
    writer.start()
    await writer.wait_acked(before, 30)
    result = fault()  # type: ignore[operator]
    if asyncio.iscoroutine(result):
        await result
    await writer.wait_acked(after, 60)
    await writer.stop()
    assert not writer.failed, writer.failed[:1]
    got = await read_everything(rig.manager, scope, stream, set(writer.acked), timeout=60)
    check_exactly_once_in_key_order(got, set(writer.acked))


async def test_dropped_connections_lose_nothing(faulty: Rig) -> None:
    rig, faults = faulty

    async def drop_twice() -> None:
        assert faults.drop_connections() > 0
        await asyncio.sleep(0.05)  # let the writers reconnect, so the second drop hits the new connections
        faults.drop_connections()

    await load_through(rig, drop_twice)


async def test_only_one_clients_connections_are_dropped(faulty: Rig) -> None:
    rig, faults = faulty
    scope, stream = await new_stream(rig.manager, segments=1)
    first = rig.manager.create_writer(scope, stream)
    await (await first.write_event(b"k0:0", routing_key="a"))
    mark = faults.connection_mark()
    async with StreamManager(rig.client_config()) as other:
        second = other.create_writer(scope, stream)
        await (await second.write_event(b"k1:0", routing_key="b"))
        assert faults.drop_connections(since=mark) >= 1
        kept = [c for c in faults.proxy.connections if c.number < mark]
        assert kept and not any(c.client.is_closing() for c in kept), "the first client keeps its connection"
        await (await second.write_event(b"k1:1", routing_key="b"))  # reconnects
        await second.close()
    await (await first.write_event(b"k0:1", routing_key="a"))
    await first.close()
    got = await read_everything(rig.manager, scope, stream, {b"k0:0", b"k0:1", b"k1:0", b"k1:1"}, timeout=30)
    check_exactly_once_in_key_order(got, set(got))


async def test_stalled_connections_hold_acks_until_resumed(faulty: Rig) -> None:
    rig, faults = faulty
    scope, stream = await new_stream(rig.manager, segments=1)
    writer = rig.manager.create_writer(scope, stream)
    await (await writer.write_event(b"k0:0"))
    async with faults.stalled():
        ack = await writer.write_event(b"k0:1")
        done, _ = await asyncio.wait({ack}, timeout=0.3)
        assert not done, "acknowledged through a stalled connection"
    await asyncio.wait_for(ack, 10)
    await writer.close()
    got = await read_everything(rig.manager, scope, stream, {b"k0:0", b"k0:1"}, timeout=30)
    assert got == [b"k0:0", b"k0:1"]


async def test_delayed_replies_slow_acks_and_lose_nothing(faulty: Rig) -> None:
    rig, faults = faulty
    scope, stream = await new_stream(rig.manager, segments=1)
    writer = rig.manager.create_writer(scope, stream)
    await (await writer.write_event(b"k0:0"))
    faults.delay_replies(0.2)
    started = time.monotonic()
    await (await writer.write_event(b"k0:1"))
    assert time.monotonic() - started >= 0.2
    faults.delay_replies(0)
    await writer.close()
    got = await read_everything(rig.manager, scope, stream, {b"k0:0", b"k0:1"}, timeout=30)
    assert got == [b"k0:0", b"k0:1"]


async def test_reordered_replies_keep_exactly_once(faulty: Rig) -> None:
    rig, faults = faulty
    faults.reorder_replies(True)
    await load_through(rig, lambda: None)
    assert faults.proxy.swapped > 10


async def test_a_failed_container_recovers_under_load(faulty: Rig) -> None:
    rig, faults = faulty

    store = rig.segment_store.store
    assert store is not None
    before = list(store.containers)

    async def fail_every_container() -> None:
        for container_id in range(2):
            await faults.fail_container(container_id)
        assert not set(before) & set(store.containers), "every container is a new, recovered instance"

    await load_through(rig, fail_every_container)


async def test_a_broken_tier1_log_fails_the_container_until_recovered(faulty: Rig) -> None:
    rig, faults = faulty
    scope, stream = await new_stream(rig.manager, segments=1)
    container = container_id_for(f"{scope}/{stream}/0.#epoch.0", 2)
    writer = LoadWriter(rig.manager, scope, stream, rate=500)
    writer.start()
    await writer.wait_acked(50, 30)
    faults.break_tier1(container)
    store = rig.segment_store.store
    assert store is not None

    async def failed() -> None:
        while not store.running(container).failed:  # type: ignore[union-attr]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(failed(), 10)
    stuck = len(writer.acked)
    await faults.recover_container(container)
    await writer.wait_acked(stuck + 100, 60)
    await writer.stop()
    assert not writer.failed, writer.failed[:1]
    got = await read_everything(rig.manager, scope, stream, set(writer.acked), timeout=60)
    check_exactly_once_in_key_order(got, set(writer.acked))


async def test_a_full_disk_holds_writes_until_space_is_freed(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with small_filesystem(disk) as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        async with clocked_standalone(disk / "data", SYSTEM_CLOCK) as rig:
            scope, stream = await new_stream(rig.manager, segments=1)
            writer = LoadWriter(rig.manager, scope, stream, rate=500)
            writer.start()
            await writer.wait_acked(50, 30)
            assert await asyncio.to_thread(fill_disk, disk / "filler") > 0
            store = rig.segment_store.store
            assert store is not None

            async def disk_full() -> None:
                while not any(c.state == "disk_full" for c in store.health().containers):
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(disk_full(), 30)
            stuck = len(writer.acked)
            (disk / "filler").unlink()
            await writer.wait_acked(stuck + 100, 60)
            await writer.stop()
            # documented (docs/client.md): the block the server refused fails with its disk-full error, not retried
            assert all(isinstance(exc, SegmentStoreError) and "disk full" in str(exc) for exc in writer.failed)
            got = await read_everything(rig.manager, scope, stream, set(writer.acked), timeout=60)
            check_exactly_once_in_key_order(got, set(writer.acked))


@pytest.mark.process
async def test_a_crashed_process_restarts_with_every_acked_event(tmp_path: Path) -> None:
    with Standalone(tmp_path / "data") as server:
        async with StreamManager(server.controller_uri) as manager:
            scope, stream = await new_stream(manager, segments=2)
            writer = LoadWriter(manager, scope, stream, rate=500)
            writer.start()
            await writer.wait_acked(100, 30)
            await asyncio.to_thread(crash_and_restart, server)
            await writer.wait_acked(len(writer.acked) + 100, 90)
            await writer.stop()
            assert not writer.failed, writer.failed[:1]
            got = await read_everything(manager, scope, stream, set(writer.acked), timeout=60)
            check_exactly_once_in_key_order(got, set(writer.acked))
