"""``anabranch cluster up | status | down`` through the real command: up runs in the foreground, status reports
every process and container as one JSON document, SIGTERM (or down) stops everything up started."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from anabranch.client.stream_manager import StreamManager
from anabranch.segmentstore.store import container_id_for
from anabranch.testing.load import check_exactly_once_in_key_order, new_stream, read_everything

pytestmark = [pytest.mark.process, pytest.mark.cluster, pytest.mark.timeout(420)]


def anabranch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anabranch", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def status(data_dir: Path) -> tuple[int, dict[str, Any] | None]:
    done = anabranch("cluster", "status", "--data-dir", str(data_dir), "--json")
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None


def wait_ready(data_dir: Path, up: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        assert up.poll() is None, f"cluster up exited with {up.returncode}"
        code, report = status(data_dir)
        last = report
        if code == 0 and report is not None and report["ready"]:
            return report
        time.sleep(0.5)
    raise TimeoutError(f"cluster not ready after {timeout} s: {last}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_status_and_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    code, report = status(data_dir)
    assert code == 1 and report is None
    up = subprocess.Popen([sys.executable, "-m", "anabranch", "cluster", "up", "--data-dir", str(data_dir),
                           "--segmentstores", "2", "--controllers", "2", "--containers", "4"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        report = wait_ready(data_dir, up, 150)
        assert len(report["controllers"]) == 2 and all(c["alive"] for c in report["controllers"])
        assert sorted(c for s in report["segmentstores"] for c in s["containers"]) == [0, 1, 2, 3]
        assert [len(s["containers"]) for s in report["segmentstores"]] == [2, 2]
        assert report["zookeeper"]["alive"] and report["tier1"]["alive"]
        pids = ([c["pid"] for c in report["controllers"]] + [s["pid"] for s in report["segmentstores"]]
                + report["zookeeper"]["pids"] + report["tier1"]["pids"])
        assert all(alive(pid) for pid in pids)
        up.send_signal(signal.SIGTERM)
        out, err = up.communicate(timeout=90)
        assert up.returncode == 0, err[-2000:]
        assert out.count("controller tcp://") == 2
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if alive(pid)]
        assert status(data_dir)[0] == 1
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(30)


def wait_progress(progress: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        text = progress.read_text() if progress.exists() else ""
        if text.isdigit() and int(text) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the official client acknowledged {text or 0} of {count} events in {timeout} s")
        time.sleep(0.1)


async def stream_and_owner(uri: str, report: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """A new 4-segment stream and the segment store serving its first segment."""
    async with StreamManager(uri) as manager:
        scope, stream = await new_stream(manager, segments=4)
        first = (await manager.get_current_segments(scope, stream))[0].qualified_name
    container = container_id_for(first, report["containers"])
    owner = next(s for s in report["segmentstores"] if container in s["containers"])
    return scope, stream, owner


async def read_back(uri: str, scope: str, stream: str, acked: set[bytes]) -> list[bytes]:
    async with StreamManager(uri) as manager:
        return await read_everything(manager, scope, stream, acked)


def test_official_client_loses_nothing_when_a_segment_store_and_a_controller_die(tmp_path: Path) -> None:
    """Issue 9's done-criterion: a cluster of 3 segment stores and 2 controllers started by `anabranch cluster up`
    loses a segment store and a controller under load from the official client, and nothing acknowledged is lost
    or duplicated (every acknowledged event read exactly once, in per-key order)."""
    data_dir = tmp_path / "cluster"
    up = subprocess.Popen([sys.executable, "-m", "anabranch", "cluster", "up", "--data-dir", str(data_dir),
                           "--segmentstores", "3", "--controllers", "2", "--containers", "6"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        report = wait_ready(data_dir, up, 150)
        survivor, doomed = report["controllers"]
        scope, stream, victim = asyncio.run(stream_and_owner(survivor["uri"], report))
        progress = tmp_path / "progress"
        script = Path(__file__).with_name("official_load.py")
        load = subprocess.Popen([sys.executable, str(script), survivor["uri"], scope, stream, "3000", "150",
                                 str(progress)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_progress(progress, 400, 90)
            os.kill(victim["pid"], signal.SIGKILL)
            os.kill(doomed["pid"], signal.SIGKILL)
            out, err = load.communicate(timeout=240)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait(30)
        assert load.returncode == 0, err[-2000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["error_count"] == 0, result["errors"]
        acked = {a.encode() for a in result["acked"]}
        assert len(acked) == 3000
        got = asyncio.run(read_back(survivor["uri"], scope, stream, acked))
        check_exactly_once_in_key_order(got, acked)
        after = status(data_dir)[1]
        assert after is not None
        moved = {c for s in after["segmentstores"] if s["alive"] for c in s["serving"]}
        assert moved == set(range(6)), after
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait(30)
