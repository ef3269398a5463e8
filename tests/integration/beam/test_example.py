"""The example pipeline (examples/beam_sensors/run.py) against a real standalone, as a user runs it.

- End to end: one command generates readings and runs the pipeline; ``anabranch read`` shows one result per
  sensor and event-time window, equal to the aggregates computed here from the same readings.
- Restart: the pipeline process is killed (``kill -9``) after its transactions are staged but before the commit
  point, then started again: no result was visible before the restart, and afterwards each appears exactly once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from anabranch.beam.checkpoint_store import CheckpointStore
from anabranch.beam.two_phase import staged
from anabranch.client import ClientConfig, StreamManager
from anabranch.testing.processes import Standalone

pytestmark = [pytest.mark.process, pytest.mark.timeout(180)]

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "beam_sensors" / "run.py"


def example_module() -> Any:
    spec = importlib.util.spec_from_file_location("beam_sensors_run", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server(shared_standalone: Standalone) -> Standalone:
    """The suite's shared standalone: these tests only use scopes of their own."""
    return shared_standalone


def expected(count: int, sensors: int, window: float) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float], list[float]] = {}
    for r in example_module().readings(count, sensors):
        start = r["time"] - r["time"] % window
        groups.setdefault((r["sensor"], start), []).append(r["value"])
    return sorted(({"sensor": s, "window_start": w, "window_end": w + window, "count": len(v),
                    "mean": round(sum(v) / len(v), 4), "max": max(v)} for (s, w), v in groups.items()),
                  key=lambda r: (r["sensor"], r["window_start"]))


def cli_read(uri: str, name: str) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "anabranch", "read", name, "--from-head", "--timeout", "2",
                          "--controller", uri], capture_output=True, text=True, timeout=60, check=True).stdout
    return sorted((json.loads(line) for line in out.splitlines() if line.strip()),
                  key=lambda r: (r["sensor"], r["window_start"]))


async def results(uri: str, scope: str) -> list[dict[str, Any]]:
    """The results stream's events (as ``anabranch read`` shows them, without its start-up and idle timeout)."""
    async with StreamManager(ClientConfig(uri)) as manager:
        batch = manager.batch_client()
        events = [json.loads(e.event) for r in await batch.list_segments(scope, "aggregates")
                  async for e in batch.read_segment(r)]
    return sorted(events, key=lambda r: (r["sensor"], r["window_start"]))


def example(uri: str, scope: str, *args: str) -> list[str]:
    return [sys.executable, str(EXAMPLE), "--controller", uri, "--scope", scope, "--readings", "400",
            "--sensors", "4", "--window", "5", *args]


def test_example_runs_end_to_end_and_anabranch_read_shows_the_results(server: Standalone) -> None:
    scope = f"sensors-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(example(server.controller_uri, scope), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pipeline done" in done.stdout
    results = cli_read(server.controller_uri, f"{scope}/aggregates")
    assert results == expected(400, 4, 5.0)
    assert len(results) == 4 * 8


def test_pipeline_killed_before_its_commit_point_and_restarted_outputs_each_result_once(server: Standalone) -> None:
    uri, scope, name = server.controller_uri, f"sensors-{uuid.uuid4().hex[:6]}", "restart-test"

    async def staged_count() -> int:
        async with StreamManager(ClientConfig(uri)) as manager:
            record = await CheckpointStore(manager, scope).load(name)
            return 0 if record is None else sum(map(len, staged(record).values()))

    first = subprocess.Popen(example(uri, scope, "--checkpoint-name", name, "--hold", "60"),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert first.stdout is not None
        for line in first.stdout:  # the pipeline ran and staged its transactions; the commit point is next
            if "holding" in line:
                break
        else:
            pytest.fail("the example ended without reaching its hold")
        deadline = time.monotonic() + 10
        while asyncio.run(staged_count()) == 0:
            assert time.monotonic() < deadline, "no transaction was staged"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert asyncio.run(results(uri, scope)) == [], "nothing is visible before the commit point"

    again = subprocess.run(example(uri, scope, "--checkpoint-name", name, "--no-generate"),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert asyncio.run(results(uri, scope)) == expected(400, 4, 5.0)
    assert asyncio.run(staged_count()) == 0
