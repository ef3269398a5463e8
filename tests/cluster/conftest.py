"""Fixtures of the cluster tests: a real ZooKeeper ensemble and a real 3-node NATS JetStream cluster, each
started once per session (a few seconds) and shared; every test gets its own cluster name, so tests never see
each other's znodes or streams."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from anabranch.cluster.layout import ClusterPaths
from anabranch.cluster.nats_server import NatsCluster
from anabranch.cluster.zookeeper_server import ZooKeeperEnsemble


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperEnsemble]:
    """A 3-node ZooKeeper ensemble on loopback (Debian's jars, run with java)."""
    ensemble = ZooKeeperEnsemble(tmp_path_factory.mktemp("zookeeper"), nodes=3)
    ensemble.start(timeout=60)
    try:
        yield ensemble
    finally:
        ensemble.stop()


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A 3-node NATS JetStream cluster on loopback (``sync_interval: always``), shared by the session: tests
    must not kill its nodes (start their own ``NatsCluster`` for that) and should use their own stream prefix
    (e.g. ``cluster_name``)."""
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"), nodes=3)
    cluster.start(timeout=60)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_name() -> str:
    """A cluster name no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cluster_paths(cluster_name: str) -> ClusterPaths:
    return ClusterPaths.for_cluster(cluster_name)
