"""Controllers in cluster mode as real processes: ``anabranch controller --zookeeper`` against two real segment
stores (single-host mode, each able to serve every container, registered in ZooKeeper by the test, so routing is
observable: a segment exists only on the segment store its container's owner is), real ZooKeeper.

- every segment the controllers create lands on its container's owner; ``getURI`` on either controller answers
  that owner; ``getControllerServerList`` lists both controllers;
- a controller killed (kill -9) mid-scale and mid-commit: the other one becomes leader and finishes both workflows
  from their intent records, without any further request;
- start-up errors: unreachable ZooKeeper, a container count that differs from the cluster's, neither or both of
  --segmentstore/--zookeeper: one line, exit code ≠ 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from anabranch.client.connection import next_request_id
from anabranch.cluster.layout import ClusterPaths, ContainerMap, HostRecord
from anabranch.cluster.zk import ZkClient
from anabranch.cluster.zookeeper_server import ZooKeeperEnsemble
from anabranch.model.names import SYSTEM_SCOPE, qualified_segment_name, table_segment_name
from anabranch.protocol import commands as c
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from anabranch.segmentstore.store import container_id_for
from anabranch.testing.processes import HOST, SegmentStoreProcess, ServerProcess, free_port
from tests.cluster.segmentstore.ss_cluster_helpers import ask, wait_until

pytestmark = [pytest.mark.process, pytest.mark.cluster]

COUNT = 4
TIMEOUT = 30.0


class ControllerNode(ServerProcess):
    def __init__(self, tmp: Path, name: str, zookeeper: str, cluster: str, key: list[str]) -> None:
        self.port = free_port()
        args = ["controller", "--zookeeper", zookeeper, "--cluster", cluster, "--containers", str(COUNT),
                "--host", HOST, "--port", str(self.port), "--admin-port", "0", "--zookeeper-session-timeout", "2",
                "--rebalance-interval", "0.2", *key]
        super().__init__(args, [self.port], tmp / name)

    def stub(self) -> tuple[grpc.Channel, pb_grpc.ControllerServiceStub]:
        channel = grpc.insecure_channel(f"{HOST}:{self.port}")
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        return channel, pb_grpc.ControllerServiceStub(channel)


@pytest.fixture
def key(tmp_path: Path) -> list[str]:
    return ["--token-signing-key-file", str(tmp_path / "signing.key")]


@pytest.fixture
def stores(tmp_path: Path, key: list[str]) -> Iterator[dict[str, SegmentStoreProcess]]:
    started = {name: SegmentStoreProcess(tmp_path / name, None, "--containers", str(COUNT), *key)
               for name in ("ss1", "ss2")}
    for store in started.values():
        store.start(60)
    yield started
    for store in started.values():
        store.kill()


@pytest.fixture
async def registered(zookeeper: ZooKeeperEnsemble, cluster_paths: ClusterPaths,
                     stores: dict[str, SegmentStoreProcess]) -> AsyncIterator[ZkClient]:
    """The segment stores' ``hosts/`` nodes (what a cluster-mode segment store registers itself)."""
    zk = ZkClient(zookeeper.connect_string)
    await zk.start()
    for name, store in stores.items():
        await zk.create(cluster_paths.host(name), HostRecord(name, HOST, store.segmentstore_port).encode(),
                        ephemeral=True)
    yield zk
    await zk.stop()


@pytest.fixture
def controllers(tmp_path: Path, zookeeper: ZooKeeperEnsemble, cluster_name: str, key: list[str],
                registered: ZkClient) -> Iterator[list[ControllerNode]]:
    nodes = [ControllerNode(tmp_path, f"c{i}", zookeeper.connect_string, cluster_name, key) for i in (1, 2)]
    nodes[0].start(60)  # first to contend: the leader
    nodes[1].start(60)
    yield nodes
    for node in nodes:
        node.kill()


async def owner_port(zk: ZkClient, paths: ClusterPaths, segment: str) -> int:
    container_map = ContainerMap.decode((await zk.get(paths.container_map))[0])
    owner = container_map.owner_of(container_id_for(segment, COUNT))
    assert owner is not None
    return HostRecord.decode((await zk.get(paths.host(owner)))[0]).port


def stream_config(scope: str, stream: str, n: int) -> pb.StreamConfig:
    return pb.StreamConfig(streamInfo=pb.StreamInfo(scope=scope, stream=stream),
                           scalingPolicy=pb.ScalingPolicy(minNumSegments=n))


async def test_segments_live_on_their_owner_and_get_uri_answers_it(
        controllers: list[ControllerNode], registered: ZkClient, cluster_paths: ClusterPaths,
        stores: dict[str, SegmentStoreProcess], key: list[str]) -> None:
    channel, stub = controllers[0].stub()
    channel2, stub2 = controllers[1].stub()
    try:
        assert stub.createScope(pb.ScopeInfo(scope="sc"), timeout=TIMEOUT).status == pb.CreateScopeStatus.SUCCESS
        assert stub.createStream(stream_config("sc", "st", 8), timeout=TIMEOUT).status == \
            pb.CreateStreamStatus.SUCCESS
        ranges = stub2.getCurrentSegments(pb.StreamInfo(scope="sc", stream="st"), timeout=TIMEOUT).segmentRanges
        assert len(ranges) == 8
        ports = {s.segmentstore_port for s in stores.values()}
        placed = set()
        for r in ranges:
            name = qualified_segment_name("sc", "st", r.segmentId.segmentId)
            owner = await owner_port(registered, cluster_paths, name)
            for either in (stub, stub2):
                uri = either.getURI(r.segmentId, timeout=TIMEOUT)
                assert (uri.endpoint, uri.port) == (HOST, owner)
            token = stub.getDelegationToken(pb.StreamInfo(scope="sc", stream="st"), timeout=TIMEOUT).delegationToken
            on_owner = await ask(owner, c.GetStreamSegmentInfo(next_request_id(), name, token))
            (other,) = ports - {owner}
            elsewhere = await ask(other, c.GetStreamSegmentInfo(next_request_id(), name, token))
            assert isinstance(on_owner, c.StreamSegmentInfo) and on_owner.exists, on_owner
            assert isinstance(elsewhere, c.NoSuchSegment) or (
                isinstance(elsewhere, c.StreamSegmentInfo) and not elsewhere.exists), elsewhere
            placed.add(owner)
        assert placed == ports  # 8 segments over 4 containers on 2 hosts: both hold some
        listed = stub2.getControllerServerList(pb.ServerRequest(), timeout=TIMEOUT).nodeURI
        assert sorted((n.endpoint, n.port) for n in listed) == sorted((HOST, n.port) for n in controllers)
    finally:
        channel.close()
        channel2.close()


def streams_split_between(container_map: ContainerMap, free: str, paused: str) -> list[str]:
    """Stream names of scope ``sc`` whose metadata table's container is on ``free`` and whose first segment's
    container is on ``paused``: while ``paused`` is stopped, a workflow on such a stream records its intent (on
    ``free``) and then hangs on its segments."""
    names = []
    for i in range(1000):
        table = table_segment_name(SYSTEM_SCOPE, "streams", "sc", f"st{i}")
        first = qualified_segment_name("sc", f"st{i}", 0)
        if (container_map.owner_of(container_id_for(table, COUNT)) == free
                and container_map.owner_of(container_id_for(first, COUNT)) == paused):
            names.append(f"st{i}")
    return names


async def test_killed_controllers_scale_and_commit_are_finished_by_the_other(
        controllers: list[ControllerNode], registered: ZkClient, cluster_paths: ClusterPaths,
        stores: dict[str, SegmentStoreProcess]) -> None:
    """Pause the segment store holding the streams' segments (not their metadata), so the scale and the commit
    sent to the leader record their intent and then hang; kill -9 the leader; resume the segment store. The
    other controller, once leader, must finish both from the intent records: no request of the test mutates."""
    first, second = controllers
    container_map = ContainerMap.decode((await registered.get(cluster_paths.container_map))[0])
    scaled, committed = streams_split_between(container_map, "ss1", "ss2")[:2]
    channel, stub = first.stub()
    to_scale, to_commit = pb.StreamInfo(scope="sc", stream=scaled), pb.StreamInfo(scope="sc", stream=committed)
    stub.createScope(pb.ScopeInfo(scope="sc"), timeout=TIMEOUT)
    for info in (to_scale, to_commit):
        stub.createStream(stream_config("sc", info.stream, 1), timeout=TIMEOUT)
    created = stub.createTransaction(pb.CreateTxnRequest(streamInfo=to_commit, lease=60000), timeout=TIMEOUT)
    txn = pb.TxnRequest(streamInfo=to_commit, txnId=created.txnId)
    channel2, stub2 = second.stub()
    paused = stores["ss2"].pid
    os.kill(paused, signal.SIGSTOP)
    try:
        scale = stub.scale.future(pb.ScaleRequest(streamInfo=to_scale, sealedSegments=[0], newKeyRanges=[
            pb.ScaleRequest.KeyRangeEntry(start=i / 8, end=(i + 1) / 8) for i in range(8)]), timeout=TIMEOUT)
        commit = stub.commitTransaction.future(txn, timeout=TIMEOUT)

        async def intents_recorded() -> bool:
            if stub2.checkTransactionState(txn, timeout=TIMEOUT).state != pb.TxnState.COMMITTING:
                return False
            with contextlib.suppress(grpc.RpcError):
                stub2.getEpochSegments(pb.GetEpochSegmentsRequest(streamInfo=to_scale, epoch=1), timeout=TIMEOUT)
                return True
            return False

        await wait_until(intents_recorded, 15, "the leader recorded the commit and the scale")
        first.kill()
    finally:
        os.kill(paused, signal.SIGCONT)
    for future in (scale, commit):
        with contextlib.suppress(grpc.RpcError):
            future.result()
    channel.close()
    current = [r.segmentId.segmentId for r in stub2.getCurrentSegments(to_scale, timeout=TIMEOUT).segmentRanges]
    assert current == [0]  # not finished by the killed controller

    async def finished() -> bool:
        state = stub2.checkTransactionState(txn, timeout=TIMEOUT).state
        segments = stub2.getCurrentSegments(to_scale, timeout=TIMEOUT).segmentRanges
        return state == pb.TxnState.COMMITTED and len(segments) == 8 and all(
            r.segmentId.segmentId >> 32 == 1 for r in segments)

    try:
        await wait_until(finished, 30, "the surviving controller finished the scale and the commit")
        assert stub2.sealStream(to_scale, timeout=TIMEOUT).status == pb.UpdateStreamStatus.SUCCESS
    finally:
        channel2.close()


def run_controller(key: list[str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anabranch", "controller", "--admin-port", "0", "--port", "0",
                           *key, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert pattern in result.stderr, result.stderr


def test_start_errors_are_one_line(zookeeper: ZooKeeperEnsemble, cluster_name: str, key: list[str]) -> None:
    assert_one_line_error(run_controller(key, "--zookeeper", f"{HOST}:{free_port()}"), "did not answer")
    assert_one_line_error(run_controller(key), "--segmentstore")
    assert_one_line_error(run_controller(key, "--segmentstore", f"{HOST}:1", "--zookeeper", zookeeper.connect_string),
                          "--segmentstore")
    first = run_controller(key, "--zookeeper", zookeeper.connect_string, "--cluster", cluster_name, "--containers", "4",
                           "--startup-timeout", "1")
    assert_one_line_error(first, "no segment store owns every container")
    assert_one_line_error(run_controller(key, "--zookeeper", zookeeper.connect_string, "--cluster", cluster_name,
                                         "--containers", "5"), "--containers 4")
