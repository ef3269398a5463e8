"""``anabranch bench streams`` end to end: a fresh standalone in its own process, streams created, restarted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.process
def test_bench_streams_reports_rates_memory_and_restart() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "anabranch", "bench", "streams", "--count", "200", "--sequential", "50",
         "--concurrency", "8", "--idle-settle", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["streams"] == 200
    for key in ("sequential_creates_per_s", "concurrent_creates_per_s", "sequential_create_p50_ms",
                "concurrent_create_p99_ms", "restart_s", "restart_listed_s"):
        assert figures[key] > 0, (key, figures)
    assert figures["rss_after_mb"] > 0 and isinstance(figures["rss_per_stream_bytes"], int)
    assert figures["rss_after_restart_idle_mb"] > 0 and isinstance(figures["rss_per_stream_after_restart_bytes"], int)
    assert figures["restart_listed_s"] <= figures["restart_s"]
