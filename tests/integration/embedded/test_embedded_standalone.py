"""``anabranch.embedded.Standalone``: a segment store and a controller in the test's own event loop, over real TCP
and gRPC, in memory or on fsync'd files; restart keeps what was acknowledged (on files); stop leaves nothing behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from anabranch.client import ReaderGroupConfig, StreamManager
from anabranch.clock import ManualClock
from anabranch.datadir import DataDirInUseError
from anabranch.embedded import Standalone
from anabranch.testing.assertions import assert_exactly_once, assert_per_key_order

TIMEOUT = 30.0


async def read_n(manager: StreamManager, scope: str, stream: str, count: int, group: str = "check") -> list[bytes]:
    """Read ``count`` events with a new reader group (then one more read, which must find nothing)."""
    rg = await manager.create_reader_group(scope, group, ReaderGroupConfig.for_streams(scope, stream))
    reader = await rg.create_reader("r1")
    got: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} events read"
        read = await reader.read_next_event(timeout=1.0)
        if read.event is not None:
            got.append(read.event)
    extra = await reader.read_next_event(timeout=0.2)
    assert extra.event is None, f"read more than written: {extra.event!r}"
    await reader.close()
    return got


async def write_n(manager: StreamManager, scope: str, stream: str, events: list[bytes]) -> None:
    writer = manager.create_writer(scope, stream)
    acks = [await writer.write_event(e, routing_key=e.split(b"-")[0].decode()) for e in events]
    await asyncio.wait_for(asyncio.gather(*acks), TIMEOUT)
    await writer.close()


async def test_in_memory_standalone_serves_on_free_ports_without_touching_the_disk(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch
                                                                                  ) -> None:
    monkeypatch.chdir(tmp_path)
    async with Standalone(containers=2) as server:
        assert server.data_dir is None and not server.durable
        assert server.controller_uri == f"tcp://127.0.0.1:{server.controller.port}"
        assert server.controller.port not in (0, 9090) and server.segment_store.port not in (0, 12345)
        await server.create_stream("shop", "orders", segments=2)
        events = [b"k%d-%d" % (i % 3, i) for i in range(50)]
        await write_n(server.manager, "shop", "orders", events)
        got = await read_n(server.manager, "shop", "orders", len(events))
        assert_exactly_once(events, got)
    assert list(tmp_path.iterdir()) == [], "an in-memory server wrote files"


async def test_a_durable_restart_keeps_every_acknowledged_event_and_clients_reconnect(tmp_path: Path) -> None:
    async with Standalone(tmp_path / "data", containers=2) as server:
        ports = (server.segment_store.port, server.controller.port)
        await server.create_stream("shop", "orders", segments=2)
        writer = server.manager.create_writer("shop", "orders")
        before = [b"k%d-%d" % (i % 4, i) for i in range(100)]
        await asyncio.wait_for(asyncio.gather(*[await writer.write_event(e, routing_key=e[:2].decode())
                                                for e in before]), TIMEOUT)
        old_store = server.segment_store
        await server.restart()
        assert server.segment_store is not old_store
        assert (server.segment_store.port, server.controller.port) == ports, "restart moved to other ports"
        after = [b"k%d-%d" % (i % 4, i) for i in range(100, 150)]
        acks = [await writer.write_event(e, routing_key=e[:2].decode()) for e in after]  # the same writer goes on
        await asyncio.wait_for(asyncio.gather(*acks), TIMEOUT)
        await writer.close()
        got = await read_n(server.manager, "shop", "orders", 150)
        assert_exactly_once(before + after, got)
    assert (tmp_path / "data" / "tier1").is_dir()
    async with Standalone(tmp_path / "data", containers=2) as again:  # a new server on the same files
        assert_exactly_once(before + after, await read_n(again.manager, "shop", "orders", 150, group="again"))


async def test_in_memory_restart_starts_empty() -> None:
    async with Standalone(containers=1) as server:
        await server.create_stream("s", "gone")
        await server.restart()
        assert [s async for s in server.manager.list_scopes()] == []


async def test_a_data_directory_serves_one_server_at_a_time(tmp_path: Path) -> None:
    async with Standalone(tmp_path / "data", containers=1):
        with pytest.raises(DataDirInUseError):
            await Standalone(tmp_path / "data", containers=1).start()
    async with Standalone(tmp_path / "data", containers=1):  # released by stop
        pass


async def test_stop_leaves_no_task_and_no_thread_behind() -> None:
    import threading

    threads_before = set(threading.enumerate())
    async with Standalone(containers=2) as server:
        await server.create_stream("s", "t")
        await write_n(server.manager, "s", "t", [b"a-1", b"b-2"])
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert left == [], f"tasks left running after stop: {left}"
    grpc_threads = {t for t in set(threading.enumerate()) - threads_before if not t.daemon}
    assert grpc_threads == set(), f"non-daemon threads left after stop: {grpc_threads}"


async def test_the_clock_reaches_the_servers_and_the_clients_it_configures() -> None:
    clock = ManualClock(start_time=1_800_000_000.0)
    async with Standalone(containers=1, clock=clock) as server:
        assert server.segment_store.clock is clock and server.controller.clock is clock
        assert server.client_config().clock is clock and server.manager.config.clock is clock
        assert server.client_config(request_timeout=5.0).request_timeout == 5.0


async def test_a_crash_restart_replays_tier1_and_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    async with Standalone(tmp_path / "data", containers=2) as server:
        await server.create_stream("shop", "orders", segments=2)
        writer = server.manager.create_writer("shop", "orders")
        events = [b"k%d-%d" % (i % 4, i) for i in range(200)]
        acks = [await writer.write_event(e, routing_key=e[:2].decode()) for e in events[:150]]
        await asyncio.wait_for(asyncio.gather(*acks), TIMEOUT)
        await server.restart(crash=True)  # containers aborted: nothing flushed to LTS
        acks = [await writer.write_event(e, routing_key=e[:2].decode()) for e in events[150:]]
        await asyncio.wait_for(asyncio.gather(*acks), TIMEOUT)
        await writer.close()
        got = await read_n(server.manager, "shop", "orders", len(events))
        assert_exactly_once(events, got)
        assert_per_key_order(got, key=lambda e: e[:2], written=events)
