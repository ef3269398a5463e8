"""Security in cluster mode: with ``--auth`` on every process of a real cluster (2 segment stores, 2 controllers,
ZooKeeper, NATS), every segment store checks the delegation tokens the controllers sign with the shared key, so a
user with credentials writes and reads across all of them and a client without credentials is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from anabranch.cli.main import cli
from anabranch.client.config import ClientConfig
from anabranch.client.errors import AuthenticationError
from anabranch.client.stream_manager import StreamManager
from anabranch.cluster.local import LocalCluster, LocalClusterConfig
from anabranch.testing.load import LoadWriter, check_exactly_once_in_key_order, new_stream, read_everything

pytestmark = [pytest.mark.process, pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("secured")
    password_file = base / "passwords"
    done = CliRunner().invoke(cli, ["user", "add", "writer", "--password-file", str(password_file),
                                    "--password", "writer-pw", "--acl", "prn::*,READ_UPDATE"])
    assert done.exit_code == 0, done.output
    local = LocalCluster(LocalClusterConfig(
        base / "cluster", segmentstores=2, controllers=2, containers=4,
        extra_segmentstore_args=["--auth"],
        extra_controller_args=["--auth", "--password-file", str(password_file)]))
    local.start()
    try:
        local.wait_ready(120)
        yield local
    finally:
        local.stop()


async def test_credentials_write_and_read_across_every_segment_store(secured: LocalCluster) -> None:
    config = ClientConfig(secured.controller_uri, username="writer", password="writer-pw")
    async with StreamManager(config) as manager:
        scope, stream = await new_stream(manager, segments=4)
        load = LoadWriter(manager, scope, stream, rate=500)
        load.start()
        await load.wait_acked(400, 60)
        await load.stop()
        assert not load.failed, load.failed[:3]
        got = await read_everything(manager, scope, stream, set(load.acked))
        check_exactly_once_in_key_order(got, set(load.acked))
    owners = {s["id"] for s in secured.status()["segmentstores"] if s["serving"]}
    assert len(owners) == 2


async def test_no_credentials_are_refused(secured: LocalCluster) -> None:
    config = ClientConfig(secured.controller_uri, retry_budget=5.0)
    async with StreamManager(config) as manager:
        with pytest.raises(AuthenticationError):
            await manager.create_scope("intruders")


def test_segment_stores_were_started_with_auth(secured: LocalCluster) -> None:
    assert all("--auth" in node.args for node in secured.segmentstores)
    assert Path(secured.data_dir / "token-signing.key").exists()
