"""The ``anabranch_clock`` / ``anabranch_clocked_standalone`` / ``anabranch_faults`` fixtures in a user's test
suite, from the installed ``anabranch`` pytest plugin: a generated test file run by pytest in a subprocess, in
pytest-asyncio's strict mode (what a project that configures nothing gets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_TESTS = '''
import pytest


@pytest.mark.asyncio
async def test_an_abandoned_transaction_times_out(anabranch_clocked_standalone, anabranch_clock):
    manager = anabranch_clocked_standalone.manager
    await manager.create_scope("app")
    await manager.create_stream("app", "orders")
    txn = await manager.controller.create_transaction("app", "orders", 10_000)
    await anabranch_clock.tick(11)
    state = await manager.controller.check_transaction_state("app", "orders", txn.txn_id)
    assert state.name in ("ABORTING", "ABORTED")


@pytest.mark.asyncio
async def test_writes_survive_dropped_connections(anabranch_standalone, anabranch_faults):
    manager = anabranch_standalone.manager
    await manager.create_scope("app")
    await manager.create_stream("app", "orders")
    writer = manager.create_writer("app", "orders")
    await (await writer.write_event(b"one"))
    assert anabranch_faults.drop_connections() >= 1
    await (await writer.write_event(b"two"))
    await writer.close()
'''


def test_the_fixtures_work_in_a_users_suite(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text(USER_TESTS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=strict",
         "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
