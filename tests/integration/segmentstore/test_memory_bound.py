"""A segment store that has taken 2 GiB of appends stays under its cache size plus 300 MB resident."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.process


def test_resident_size_stays_bounded_after_2_gib_of_appends() -> None:
    cache_mb = 64
    done = subprocess.run(
        [sys.executable, "-m", "anabranch", "bench", "append", "--event-size", "1024", "--events", "2100000",
         "--cache-size", str(cache_mb), "--latency-seconds", "0.2", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["events"] * figures["event_size"] >= 2 * 1024**3
    assert 0 < figures["server_peak_rss_mb"] < cache_mb + 300, figures
