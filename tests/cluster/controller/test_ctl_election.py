"""Controller leadership and container balancing on a real ZooKeeper ensemble: one leader writes the map, the
other takes over when it dies (or gives up after losing its session) and rebalances as segment stores come and
go; every controller's view follows the map; the container count is settled once per cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kazoo.protocol.states import KazooState

from anabranch.cluster.controller_cluster import ControllerClusterOptions, ControllerMember, settle_container_count
from anabranch.cluster.layout import ClusterPaths, ContainerMap, HostRecord
from anabranch.cluster.zk import ClusterUnavailableError, ZkClient
from anabranch.cluster.zookeeper_server import ZooKeeperEnsemble
from anabranch.errors import ConfigError
from tests.cluster.segmentstore.ss_cluster_helpers import wait_until

pytestmark = [pytest.mark.process, pytest.mark.cluster]

COUNT = 6


@pytest.fixture
async def zk(zookeeper: ZooKeeperEnsemble) -> AsyncIterator[ZkClient]:
    client = ZkClient(zookeeper.connect_string)
    await client.start()
    yield client
    await client.stop()


async def add_host(zk: ZkClient, paths: ClusterPaths, host_id: str, port: int) -> None:
    await zk.create(paths.host(host_id), HostRecord(host_id, "127.0.0.1", port).encode(), ephemeral=True)


async def read_map(zk: ZkClient, paths: ClusterPaths) -> ContainerMap:
    found = await zk.get_or_none(paths.container_map)
    return ContainerMap.decode(found[0]) if found is not None else ContainerMap()


def balanced(container_map: ContainerMap, hosts: set[str]) -> bool:
    loads = [len(cs) for cs in container_map.assignment.values()]
    owned = sorted(c for cs in container_map.assignment.values() for c in cs)
    return set(container_map.assignment) == hosts and owned == list(range(COUNT)) and max(loads) - min(loads) <= 1


async def start_member(zookeeper: ZooKeeperEnsemble, name: str, ident: str, port: int) -> ControllerMember:
    member = ControllerMember(ControllerClusterOptions(zookeeper.connect_string, name, COUNT, controller_id=ident,
                                                       rebalance_interval=0.2))
    await member.connect(settle_timeout=10)
    member.start_election()
    await member.register("127.0.0.1", port)
    return member


async def test_leader_writes_map_and_the_other_takes_over(zookeeper: ZooKeeperEnsemble, zk: ZkClient,
                                                          cluster_name: str, cluster_paths: ClusterPaths) -> None:
    hosts = ZkClient(zookeeper.connect_string)
    await hosts.start()
    members = [await start_member(zookeeper, cluster_name, f"c{i}", 9000 + i) for i in (1, 2)]
    try:
        await add_host(hosts, cluster_paths, "h1", 7001)
        await add_host(hosts, cluster_paths, "h2", 7002)

        async def one_leader_and_balanced() -> bool:
            return (sum(m.is_leader for m in members) == 1
                    and balanced(await read_map(zk, cluster_paths), {"h1", "h2"}))

        await wait_until(one_leader_and_balanced, 15, "one leader, map balanced over h1 and h2")
        leader = next(m for m in members if m.is_leader)
        follower = next(m for m in members if not m.is_leader)
        assert follower.view is not None
        await wait_until(lambda: _true(follower.view is not None and follower.view.covers_all()), 10,
                         "the follower's view covers every container")
        assert sorted(follower.view.controllers) == [("127.0.0.1", 9001), ("127.0.0.1", 9002)]
        first = await read_map(zk, cluster_paths)
        owner = first.owner_of(0)
        assert follower.view.owner(0) == ("127.0.0.1", 7001 if owner == "h1" else 7002)

        await leader.zk.stop()  # the leader's session ends, as when its process dies

        await wait_until(lambda: _true(follower.is_leader), 15, "the other controller leads")
        await add_host(hosts, cluster_paths, "h3", 7003)
        await wait_until(lambda: _balanced_over(zk, cluster_paths, {"h1", "h2", "h3"}), 15, "rebalanced onto h3")
        moved = await read_map(zk, cluster_paths)
        assert moved.version > first.version
        kept = sum(len(set(first.assignment[h]) & set(moved.assignment[h])) for h in ("h1", "h2"))
        assert kept == COUNT - len(moved.assignment["h3"])  # only what h3 needed moved
        await hosts.delete(cluster_paths.host("h1"))
        await wait_until(lambda: _balanced_over(zk, cluster_paths, {"h2", "h3"}), 15, "h1's containers moved")
        await wait_until(lambda: _true(follower.view is not None and follower.view.owner(0) is not None
                                       and follower.view.owner(0) != ("127.0.0.1", 7001)), 10, "view follows")
    finally:
        for member in members:
            await member.stop()
        await hosts.stop()


async def test_lost_session_gives_up_leadership(zookeeper: ZooKeeperEnsemble, cluster_name: str) -> None:
    members = [await start_member(zookeeper, cluster_name, f"c{i}", 9000 + i) for i in (1, 2)]
    elected: list[str] = []
    deposed: list[str] = []
    for member in members:
        member.on_elected = lambda m=member: elected.append(m.controller_id)
        member.on_deposed = lambda m=member: deposed.append(m.controller_id)
    try:
        await wait_until(lambda: _true(sum(m.is_leader for m in members) == 1), 15, "one leader")
        leader = next(m for m in members if m.is_leader)
        other = next(m for m in members if not m.is_leader)
        leader._on_state(KazooState.LOST)  # what kazoo reports once the servers expired the session
        assert not leader.is_leader and deposed == [leader.controller_id]
        await wait_until(lambda: _true(other.is_leader), 15, "the other controller leads")
        assert elected[-1] == other.controller_id
        assert sum(m.is_leader for m in members) == 1
    finally:
        for member in members:
            await member.stop()


async def test_container_count_is_settled_once(zk: ZkClient, cluster_paths: ClusterPaths) -> None:
    with pytest.raises(ClusterUnavailableError, match="no container count"):
        await settle_container_count(zk, cluster_paths, None, timeout=0.5)
    assert await settle_container_count(zk, cluster_paths, 8, timeout=1) == 8
    assert await settle_container_count(zk, cluster_paths, None, timeout=1) == 8
    with pytest.raises(ConfigError, match=r"has 8 containers.*--containers 4"):
        await settle_container_count(zk, cluster_paths, 4, timeout=1)


async def _true(value: bool) -> bool:
    return value


async def _balanced_over(zk: ZkClient, paths: ClusterPaths, hosts: set[str]) -> bool:
    return balanced(await read_map(zk, paths), hosts)
