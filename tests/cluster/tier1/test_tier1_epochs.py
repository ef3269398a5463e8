"""Container owner epochs in a real ZooKeeper ensemble: they start at 1, rise by one per new owner, and racing
would-be owners (separate sessions) always get distinct epochs; a corrupt epoch znode is a clear error."""

from __future__ import annotations

import asyncio

import pytest

from anabranch.cluster.epochs import current_container_epoch, next_container_epoch
from anabranch.cluster.layout import ClusterPaths
from anabranch.cluster.zk import ZkClient
from anabranch.cluster.zookeeper_server import ZooKeeperEnsemble
from anabranch.errors import DataCorruptionError

pytestmark = [pytest.mark.process, pytest.mark.cluster]


async def test_epochs_start_at_one_and_rise_per_container(zookeeper: ZooKeeperEnsemble,
                                                          cluster_paths: ClusterPaths) -> None:
    zk = ZkClient(zookeeper.connect_string)
    await zk.start()
    try:
        assert await current_container_epoch(zk, cluster_paths, 3) == 0
        assert [await next_container_epoch(zk, cluster_paths, 3) for _ in range(3)] == [1, 2, 3]
        assert await next_container_epoch(zk, cluster_paths, 4) == 1
        assert await current_container_epoch(zk, cluster_paths, 3) == 3
        assert (await zk.get(cluster_paths.container_epoch(3)))[0] == b"3"
    finally:
        await zk.stop()


async def test_racing_owners_get_distinct_epochs(zookeeper: ZooKeeperEnsemble, cluster_paths: ClusterPaths) -> None:
    clients = [ZkClient(zookeeper.connect_string) for _ in range(4)]
    await asyncio.gather(*(c.start() for c in clients))
    try:
        taken = await asyncio.wait_for(asyncio.gather(
            *(next_container_epoch(c, cluster_paths, 0) for c in clients for _ in range(5))), 30)
        assert sorted(taken) == list(range(1, 21))
    finally:
        await asyncio.gather(*(c.stop() for c in clients))


async def test_a_corrupt_epoch_znode_is_a_clear_error(zookeeper: ZooKeeperEnsemble,
                                                      cluster_paths: ClusterPaths) -> None:
    zk = ZkClient(zookeeper.connect_string)
    await zk.start()
    try:
        await zk.create(cluster_paths.container_epoch(1), b"not a number", makepath=True)
        with pytest.raises(DataCorruptionError, match=r"container 1: the epoch znode holds b'not a number'"):
            await next_container_epoch(zk, cluster_paths, 1)
    finally:
        await zk.stop()
