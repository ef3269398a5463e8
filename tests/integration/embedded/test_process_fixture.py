"""The plugin's ``anabranch_process`` fixture: a real ``anabranch standalone`` process; kill -9 and a restart on the
same data keep every acknowledged event."""

from __future__ import annotations

import pytest

from anabranch.client import StreamManager
from anabranch.testing.processes import Standalone as StandaloneProcess
from tests.integration.embedded.test_embedded_standalone import read_n, write_n

pytestmark = pytest.mark.process


async def test_kill_9_and_restart_keep_acknowledged_events(anabranch_process: StandaloneProcess) -> None:
    events = [b"k%d-%d" % (i % 2, i) for i in range(40)]
    async with StreamManager(anabranch_process.controller_uri) as manager:
        await manager.create_scope("s")
        await manager.create_stream("s", "t")
        await write_n(manager, "s", "t", events)
    first_pid = anabranch_process.pid
    anabranch_process.restart()  # SIGKILL, then start again on the same data and ports
    assert anabranch_process.pid != first_pid
    async with StreamManager(anabranch_process.controller_uri) as manager:
        assert await read_n(manager, "s", "t", len(events)) == events
