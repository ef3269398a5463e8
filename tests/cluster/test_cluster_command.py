"""``anabranch cluster up | status | down`` through the real command: up runs in the foreground, status reports
every process and container as one JSON document, SIGTERM (or down) stops everything up started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.process, pytest.mark.cluster, pytest.mark.timeout(240)]


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
