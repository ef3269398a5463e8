"""Two in-process segment stores on a real ZooKeeper: containers start and stop as a test-written container map
says, a moved container keeps every acknowledged append, table indexes follow their container, a container whose
log fails is restarted, and the readiness view reports it all. Tier-1 here is a file log per container in a
directory both stores share (the JetStream log is exercised by the process tests); moves are done in two steps
(unassign, then assign) because file logs have no fence."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anabranch.cluster.layout import ClusterPaths
from anabranch.cluster.scale_reporting import ClusterScaleReporter
from anabranch.cluster.segmentstore_member import ClusterOptions
from anabranch.cluster.zk import ZkClient
from anabranch.cluster.zookeeper_server import ZooKeeperEnsemble
from anabranch.errors import ConfigError
from anabranch.segmentstore.service import SegmentStoreService
from anabranch.segmentstore.stats import AUTOSCALE_TABLE, ScaleDirection, ScaleRequest
from anabranch.segmentstore.store import container_id_for
from anabranch.storage.chunks_fs import FileSystemChunkStorage
from anabranch.storage.file_log import FileDurableDataLog
from anabranch.storage.interfaces import DurableDataLog
from tests.cluster.segmentstore.ss_cluster_helpers import (
    Writer,
    create_segment,
    parse_events,
    read_all,
    segment_in,
    serves,
    wait_until,
    write_map,
)

pytestmark = pytest.mark.process

COUNT = 4


class Node:
    def __init__(self, tmp: Path, zookeeper: ZooKeeperEnsemble, name: str, host_id: str,
                 containers: int = COUNT) -> None:
        self.logs: list[DurableDataLog] = []

        def tier1(container_id: int, epoch: int) -> DurableDataLog:
            log = FileDurableDataLog(tmp / "tier1" / str(container_id))
            self.logs.append(log)
            return log

        options = ClusterOptions(zookeeper.connect_string, ("nats://127.0.0.1:1",), name, host_id,
                                 check_interval=0.5)
        self.service = SegmentStoreService(tmp / host_id, port=0, container_count=containers,
                                           lts=FileSystemChunkStorage(tmp / "lts"), cluster=options,
                                           tier1_factory=tier1)

    @property
    def port(self) -> int:
        return self.service.port

    def running(self) -> list[int]:
        assert self.service.store is not None
        return self.service.store.container_ids()


@pytest.fixture
async def zk(zookeeper: ZooKeeperEnsemble) -> AsyncIterator[ZkClient]:
    client = ZkClient(zookeeper.connect_string)
    await client.start()
    yield client
    await client.stop()


async def running(node: Node, expected: list[int], timeout: float = 20.0) -> None:
    async def check() -> bool:
        return node.running() == expected

    await wait_until(check, timeout, f"{node.service.cluster.host_id if node.service.cluster else '?'} runs "
                                     f"{expected} (runs {node.running()})")


async def test_containers_follow_the_map_and_moves_keep_acked_appends(
        tmp_path: Path, zookeeper: ZooKeeperEnsemble, zk: ZkClient, cluster_name: str,
        cluster_paths: ClusterPaths) -> None:
    a, b = Node(tmp_path, zookeeper, cluster_name, "a"), Node(tmp_path, zookeeper, cluster_name, "b")
    await a.service.start()
    await b.service.start()
    try:
        assert sorted(await zk.get_children(cluster_paths.hosts)) == ["a", "b"]
        assert a.running() == [] and b.running() == []
        await write_map(zk, cluster_paths, {"a": [0, 1, 2, 3], "b": []})
        await running(a, [0, 1, 2, 3])
        segments = [segment_in(c, COUNT) for c in range(COUNT)]
        writers = []
        for segment in segments:
            await create_segment(a.port, segment)
            writer = Writer(a.port, segment)
            await writer.open()
            for i in range(20):
                assert await writer.append(f"{segment}-{i}".encode())
            writers.append(writer)
        assert not await serves(b.port, segments[0])
        status = a.service.cluster_status()
        assert status["healthy"] and status["running"] == [0, 1, 2, 3] and status["assigned"] == [0, 1, 2, 3]

        # move containers 2 and 3 to b: unassign (a stops them, flushing), then assign
        await write_map(zk, cluster_paths, {"a": [0, 1], "b": []})
        await running(a, [0, 1])
        assert not await serves(a.port, segments[2])
        await write_map(zk, cluster_paths, {"a": [0, 1], "b": [2, 3]})
        await running(b, [2, 3])
        for writer in writers:
            await writer.close()
        for c, segment in enumerate(segments):
            port = a.port if c < 2 else b.port
            assert parse_events(await read_all(port, segment)) == writers[c].acked
        # b appends on, then gives container 3 back to a: a recovers b's appends too
        writer = Writer(b.port, segments[3])
        await writer.open()
        assert await writer.append(b"written on b")
        await writer.close()
        await write_map(zk, cluster_paths, {"a": [0, 1], "b": [2]})
        await running(b, [2])
        await write_map(zk, cluster_paths, {"a": [0, 1, 3], "b": [2]})
        await running(a, [0, 1, 3])
        assert parse_events(await read_all(a.port, segments[3])) == [*writers[3].acked, b"written on b"]
    finally:
        await a.service.stop()
        await b.service.stop()
    assert await zk.get_children(cluster_paths.hosts) == []


async def test_failed_container_restarts_and_session_loss_stops_everything(
        tmp_path: Path, zookeeper: ZooKeeperEnsemble, zk: ZkClient, cluster_name: str,
        cluster_paths: ClusterPaths) -> None:
    a = Node(tmp_path, zookeeper, cluster_name, "a")
    await a.service.start()
    try:
        await write_map(zk, cluster_paths, {"a": [0, 1]})
        await running(a, [0, 1])
        segment = segment_in(1, COUNT)
        await create_segment(a.port, segment)
        store = a.service.store
        assert store is not None
        first = store.running(1)
        assert first is not None
        # the container's log fails (as a fenced or unreachable JetStream log would): stopped, started again
        log = first._log  # the fencing wrapper around the file log
        await log.close()
        writer = Writer(a.port, segment)
        await writer.open()
        assert not await writer.append(b"lost")
        await writer.close()

        async def replaced() -> bool:
            again = store.running(1)
            return again is not None and again is not first and not again.failed

        await wait_until(replaced, 20, "container 1 started again after its log failed")
        writer = Writer(a.port, segment)
        await writer.open()
        assert await writer.append(b"after restart")
        await writer.close()
        assert a.service.cluster_status()["healthy"]

        # the ZooKeeper session expires: every container stops; once a new session is up they come back
        member = a.service.member
        assert member is not None
        registration_path = member.registration.path if member.registration else ""
        before = [store.running(0), store.running(1)]
        await expire_session(zookeeper, member.zk)

        async def restarted() -> bool:
            now = [store.running(0), store.running(1)]
            return member.zk.connected and all(c is not None and c not in before for c in now)

        await wait_until(restarted, 30, "containers stopped at the session loss and back with the new session")
        assert await zk.exists(registration_path) is not None
        assert parse_events(await read_all(a.port, segment)) == [b"after restart"]
    finally:
        await a.service.stop()


async def expire_session(zookeeper: ZooKeeperEnsemble, victim: ZkClient) -> None:
    """Expire ``victim``'s session the way ZooKeeper's tests do: another client opens the same session id and
    closes it."""
    from kazoo.client import KazooClient

    session_id, password = victim.kazoo.client_id
    twin = KazooClient(hosts=zookeeper.connect_string, client_id=(session_id, password))
    twin.start(10)
    twin.stop()
    twin.close()


async def test_container_count_must_match_the_cluster(tmp_path: Path, zookeeper: ZooKeeperEnsemble,
                                                      cluster_name: str) -> None:
    a = Node(tmp_path, zookeeper, cluster_name, "a")
    await a.service.start()
    try:
        other = Node(tmp_path, zookeeper, cluster_name, "b", containers=COUNT + 1)
        with pytest.raises(ConfigError, match=f"has {COUNT} containers"):
            await other.service.start()
    finally:
        await a.service.stop()


async def test_scale_requests_reach_the_table_on_its_owner(
        tmp_path: Path, zookeeper: ZooKeeperEnsemble, zk: ZkClient, cluster_name: str,
        cluster_paths: ClusterPaths) -> None:
    """The auto-scale request table's container runs on b: a's reports go to b over the wire; once it runs on a,
    they go through a's own table store."""
    a, b = Node(tmp_path, zookeeper, cluster_name, "a"), Node(tmp_path, zookeeper, cluster_name, "b")
    await a.service.start()
    await b.service.start()
    table_container = container_id_for(AUTOSCALE_TABLE, COUNT)
    others = [c for c in range(COUNT) if c != table_container]
    try:
        await write_map(zk, cluster_paths, {"a": others, "b": [table_container]})
        await running(a, others)
        await running(b, [table_container])
        assert a.service.stats is not None and b.service.tables is not None
        reporter = a.service.stats._reporter
        assert isinstance(reporter, ClusterScaleReporter)
        first = ScaleRequest("sc", "st", 1, ScaleDirection.UP, 2, False, 1000)
        await reporter(first)
        assert reporter.remote_reports == 1
        found = await b.service.tables.get(AUTOSCALE_TABLE, [first.key()])
        assert [entry[1] if entry else None for entry in found] == [first.encode()]
        # the table's container moves to a: a's next report is local and sees the first one
        await write_map(zk, cluster_paths, {"a": others, "b": []})
        await running(b, [])
        await write_map(zk, cluster_paths, {"a": list(range(COUNT)), "b": []})
        await running(a, list(range(COUNT)))
        second = ScaleRequest("sc", "st", 2, ScaleDirection.DOWN, 0, False, 2000)
        await reporter(second)
        assert reporter.remote_reports == 1
        assert a.service.tables is not None
        found = await a.service.tables.get(AUTOSCALE_TABLE, [first.key(), second.key()])
        assert [entry[1] if entry else None for entry in found] == [first.encode(), second.encode()]
    finally:
        await a.service.stop()
        await b.service.stop()


async def test_running_containers_are_published(tmp_path: Path, zookeeper: ZooKeeperEnsemble, zk: ZkClient,
                                                cluster_name: str, cluster_paths: ClusterPaths) -> None:
    a = Node(tmp_path, zookeeper, cluster_name, "a")
    await a.service.start()
    try:
        await write_map(zk, cluster_paths, {"a": [1, 3]})

        async def published() -> bool:
            found = await zk.get_or_none(cluster_paths.running_on("a"))
            return found is not None and json.loads(found[0]) == {"running": [1, 3], "assigned": [1, 3],
                                                                  "healthy": True}

        await wait_until(published, 20, "a publishes that it runs containers 1 and 3")
    finally:
        await a.service.stop()
    assert await zk.exists(cluster_paths.running_on("a")) is None
