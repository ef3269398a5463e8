"""``ZkClient`` against a real ZooKeeper ensemble: CRUD, CAS, ephemeral nodes, and a clear error when unreachable."""

from __future__ import annotations

import asyncio

import pytest
from kazoo.exceptions import BadVersionError
from kazoo.protocol.states import KazooState

from anabranch.cluster.layout import ClusterPaths, ContainerMap, HostRecord
from anabranch.cluster.zk import ClusterUnavailableError, ZkClient
from anabranch.cluster.zookeeper_server import ZooKeeperEnsemble, node_mode
from anabranch.testing.processes import free_port

pytestmark = pytest.mark.process


async def test_crud_and_cas(zookeeper: ZooKeeperEnsemble, cluster_paths: ClusterPaths) -> None:
    zk = ZkClient(zookeeper.connect_string)
    await zk.start()
    try:
        assert await zk.create_if_missing(cluster_paths.container_map, ContainerMap().encode())
        assert not await zk.create_if_missing(cluster_paths.container_map, b"other")
        data, stat = await zk.get(cluster_paths.container_map)
        assert ContainerMap.decode(data) == ContainerMap()
        new_map = ContainerMap({"h1": (0, 2), "h2": (1,)}, version=1)
        await zk.set(cluster_paths.container_map, new_map.encode(), version=stat.version)
        with pytest.raises(BadVersionError):
            await zk.set(cluster_paths.container_map, b"stale", version=stat.version)
        decoded = ContainerMap.decode((await zk.get(cluster_paths.container_map))[0])
        assert decoded == new_map and decoded.owner_of(2) == "h1" and decoded.owner_of(5) is None
        assert await zk.get_or_none(cluster_paths.config) is None
    finally:
        await zk.stop()


async def test_ephemeral_node_vanishes_with_its_session(zookeeper: ZooKeeperEnsemble,
                                                        cluster_paths: ClusterPaths) -> None:
    owner, observer = ZkClient(zookeeper.connect_string), ZkClient(zookeeper.connect_string)
    await owner.start()
    await observer.start()
    try:
        record = HostRecord("127.0.0.1:1234", "127.0.0.1", 1234)
        await owner.create(cluster_paths.host(record.host_id), record.encode(), ephemeral=True)
        assert await observer.get_children(cluster_paths.hosts) == [record.host_id]
        assert HostRecord.decode((await observer.get(cluster_paths.host(record.host_id)))[0]) == record
        states: list[KazooState] = []
        owner.add_state_listener(states.append)
        await owner.stop()
        assert await observer.get_children(cluster_paths.hosts) == []
        assert KazooState.LOST in states
    finally:
        await observer.stop()


async def test_unreachable_zookeeper_is_one_clear_error() -> None:
    port = free_port()
    zk = ZkClient(f"127.0.0.1:{port}", connect_timeout=1.0)
    with pytest.raises(ClusterUnavailableError, match=f"127.0.0.1:{port}.*did not answer"):
        await asyncio.wait_for(zk.start(), 10)


def test_ensemble_serves_with_a_leader(zookeeper: ZooKeeperEnsemble) -> None:
    modes = sorted(node_mode(zookeeper.host, port) or "" for port in zookeeper.client_ports)
    assert modes == ["follower", "follower", "leader"]
