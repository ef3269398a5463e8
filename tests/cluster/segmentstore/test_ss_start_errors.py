"""``anabranch segmentstore`` in cluster mode refuses to start, with one line on stderr and exit code 1, when
ZooKeeper or NATS cannot be reached, when its container count disagrees with the cluster's, or when the flags
are incomplete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from anabranch.cli.main import cli
from anabranch.cluster.layout import ClusterPaths, encode_config
from anabranch.cluster.zk import ZkClient
from anabranch.cluster.zookeeper_server import ZooKeeperEnsemble
from anabranch.testing.processes import free_port

pytestmark = pytest.mark.process


def run_segmentstore(tmp: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anabranch", "segmentstore", "--data-dir", str(tmp / "data"), "--port", "0", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line saying why (log lines of what went well before it may precede it)."""
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    problems = [line for line in lines if " WARNING " in line or " ERROR " in line or line.startswith("Error")]
    assert problems == [lines[-1]], result.stderr
    return lines[-1]


def test_unreachable_zookeeper(tmp_path: Path) -> None:
    port = free_port()
    result = run_segmentstore(tmp_path, "--zookeeper", f"127.0.0.1:{port}", "--tier1", "nats://127.0.0.1:1",
                              "--lts-dir", str(tmp_path / "lts"))
    line = one_error_line(result)
    assert f"ZooKeeper at 127.0.0.1:{port}" in line and "did not answer" in line


def test_unreachable_nats(tmp_path: Path, zookeeper: ZooKeeperEnsemble, cluster_name: str) -> None:
    port = free_port()
    result = run_segmentstore(tmp_path, "--zookeeper", zookeeper.connect_string, "--cluster", cluster_name,
                              "--tier1", f"nats://127.0.0.1:{port}", "--lts-dir", str(tmp_path / "lts"))
    line = one_error_line(result)
    assert f"nats://127.0.0.1:{port}" in line and "not available" in line


async def test_container_count_disagrees(tmp_path: Path, zookeeper: ZooKeeperEnsemble, cluster_name: str) -> None:
    zk = ZkClient(zookeeper.connect_string)
    await zk.start()
    try:
        await zk.create(ClusterPaths.for_cluster(cluster_name).config, encode_config(8))
    finally:
        await zk.stop()
    result = run_segmentstore(tmp_path, "--zookeeper", zookeeper.connect_string, "--cluster", cluster_name,
                              "--containers", "4", "--tier1", "nats://127.0.0.1:1", "--lts-dir", str(tmp_path / "lts"))
    line = one_error_line(result)
    assert "has 8 containers" in line and "--containers 8" in line


@pytest.mark.parametrize(("args", "message"), [
    (["--zookeeper", "127.0.0.1:1", "--lts-dir", "x"], "needs --tier1"),
    (["--zookeeper", "127.0.0.1:1", "--tier1", "nats://127.0.0.1:1"], "--lts-dir DIR or --lts-s3-bucket"),
    (["--tier1", "nats://127.0.0.1:1"], "only make sense with --zookeeper"),
    (["--zookeeper", "127.0.0.1:1", "--tier1", "http://x:1", "--lts-dir", "x"], "not a nats:// URL"),
])
def test_incomplete_flags(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["segmentstore", "--data-dir", str(tmp_path / "data"), "--port", "0", *args])
    assert result.exit_code == 2
    assert message in result.output
