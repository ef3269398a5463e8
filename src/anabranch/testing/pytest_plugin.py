"""The ``anabranch`` pytest plugin (registered as a ``pytest11`` entry point: installed with the package, on in every
project that has both): fixtures that give a test a whole Anabranch.

| fixture | what the test gets |
| --- | --- |
| ``anabranch_standalone`` | an embedded in-memory ``Standalone`` in the test's event loop, new for each test (async) |
| ``anabranch_durable_standalone`` | the same on fsync'd files in ``tmp_path``; ``await server.restart()`` keeps data |
| ``anabranch_blocking_standalone`` | an embedded ``BlockingStandalone`` (loop in a thread) for synchronous tests |
| ``anabranch_standalone_session`` | one ``BlockingStandalone`` for the whole session; clients connect to its
  ``controller_uri`` / ``client_config()`` from any loop (each test creates its own scopes) |
| ``anabranch_process`` | a real ``anabranch standalone`` process (``kill()``; ``restart()``: kill -9, start again) |
| ``anabranch_cluster`` | a ``LocalCluster`` (ZooKeeper, NATS JetStream, 2 segment stores, 1 controller), or a skip
  naming what is not installed |

The async fixtures need pytest-asyncio: in a project that does not set ``asyncio_mode = "auto"``, mark async tests
``@pytest.mark.asyncio``. Without pytest-asyncio only the blocking, process and cluster fixtures exist. The mock clock
and fault-injection fixtures live in ``anabranch.testing.fault_fixtures`` (loaded from here). Imports of the servers
happen when a fixture is first used, so the plugin costs a project's other tests nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from anabranch.cluster.local import LocalCluster
    from anabranch.embedded import BlockingStandalone, Standalone
    from anabranch.testing.processes import Standalone as StandaloneProcess

HAS_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None

pytest_plugins = ["anabranch.testing.fault_fixtures"] if HAS_PYTEST_ASYNCIO else []


# ---- embedded, in the test's event loop (pytest-asyncio) ----

if HAS_PYTEST_ASYNCIO:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def anabranch_standalone() -> AsyncIterator[Standalone]:
        """An embedded in-memory standalone for one test: ``server.manager``, ``server.controller_uri``,
        ``server.client_config()``."""
        from anabranch.embedded import Standalone

        async with Standalone() as server:
            yield server

    @pytest_asyncio.fixture
    async def anabranch_durable_standalone(tmp_path: Path) -> AsyncIterator[Standalone]:
        """An embedded standalone on fsync'd files under ``tmp_path / "anabranch"`` (survives ``restart()``)."""
        from anabranch.embedded import Standalone

        async with Standalone(tmp_path / "anabranch") as server:
            yield server


# ---- embedded, blocking (a loop in a background thread) ----

@pytest.fixture
def anabranch_blocking_standalone() -> Iterator[BlockingStandalone]:
    """An embedded in-memory standalone whose loop runs in a background thread, for synchronous tests."""
    from anabranch.embedded import BlockingStandalone

    with BlockingStandalone() as server:
        yield server


@pytest.fixture(scope="session")
def anabranch_standalone_session() -> Iterator[BlockingStandalone]:
    """One embedded in-memory standalone for the whole session (on its own thread's loop, so tests on any event
    loop reach it over TCP through ``controller_uri`` / ``client_config()``). Tests share it: use unique names."""
    from anabranch.embedded import BlockingStandalone

    with BlockingStandalone() as server:
        yield server


# ---- real processes ----

@pytest.fixture
def anabranch_process(tmp_path: Path) -> Iterator[StandaloneProcess]:
    """A real ``anabranch standalone`` process on free ports with data in ``tmp_path / "anabranch-process"``:
    ``controller_uri``, ``kill()`` (SIGKILL), ``restart()`` (SIGKILL, then start again on the same data and ports)."""
    from anabranch.testing.processes import Standalone as StandaloneProcess

    server = StandaloneProcess(tmp_path / "anabranch-process", None, None, "--admin-port", "0")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def cluster_unavailable() -> str | None:
    """Why a local cluster cannot run here (None when it can)."""
    from anabranch.cluster.nats_server import nats_server_binary
    from anabranch.cluster.zookeeper_server import zookeeper_classpath
    from anabranch.errors import ConfigError

    try:
        zookeeper_classpath()
        nats_server_binary()
    except ConfigError as exc:
        return str(exc)
    return None


@pytest.fixture
def anabranch_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A ``LocalCluster`` of real processes (ZooKeeper, NATS JetStream, 2 segment stores, 1 controller), ready;
    skipped, with the reason, when ZooKeeper (java + jars) or nats-server is not installed. Slow: seconds to start."""
    reason = cluster_unavailable()
    if reason is not None:
        pytest.skip(f"anabranch_cluster: {reason}")
    from anabranch.cluster.local import LocalCluster, LocalClusterConfig

    cluster = LocalCluster(LocalClusterConfig(tmp_path / "anabranch-cluster", segmentstores=2, controllers=1,
                                              containers=4))
    cluster.start()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
