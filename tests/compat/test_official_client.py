"""The official Pravega Python client (``pravega`` on PyPI) against ``anabranch standalone``.

Each scenario runs in its own process under a hard deadline (see official_scenarios.py): a client
stuck on a missing reply fails the test instead of hanging CI, and a panic in the client shows up
as a failed scenario with its stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from anabranch.testing.processes import Standalone

pytestmark = [pytest.mark.compat, pytest.mark.process]

SCENARIOS = Path(__file__).with_name("official_scenarios.py")


def run_official(server: Standalone, name: str, deadline: float = 90.0, **args: Any) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [sys.executable, str(SCENARIOS), name, server.controller_uri, json.dumps(args)],
            capture_output=True, text=True, timeout=deadline,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"official client scenario {name!r} still running after {deadline} s\n"
                    f"stdout: {exc.stdout!r}\nstderr: {str(exc.stderr)[-3000:]}")
    if done.returncode != 0 or not done.stdout.strip():
        pytest.fail(f"official client scenario {name!r} failed (exit {done.returncode})\n"
                    f"stderr: {done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_scopes(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "scopes", prefix=unique("sc"))
    assert out["created"] == [True, True, True]
    assert out["again"] is False
    assert len(out["listed"]) == 3
    assert out["deleted"] == [True, True, True]
    assert out["deleted_again"] is False
    assert out["listed_after"] == []


def test_invalid_names_are_refused(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "invalid_names", scope=unique("names"))
    assert out["scope"].startswith("ValueError")
    assert out["stream"].startswith("ValueError")


def test_streams_lifecycle_policies_and_tags(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "streams", scope=unique("streams"))
    assert out["fixed"] is True and out["fixed_again"] is False
    assert out["by_event_rate"] is True and out["by_data_rate"] is True
    assert out["tags_events"] == ["a", "b"]
    assert out["tags_bytes"] == []
    assert out["tags_fixed"] == []
    assert out["update"] is True
    assert out["tags_after_update"] == ["c"]
    assert out["listed"] == ["bytes", "events", "fixed"]
    assert out["delete_unsealed"].startswith("ValueError")
    assert out["seal"] is True and out["delete"] is True and out["delete_missing"] is False
    assert out["listed_after"] == ["bytes", "events"]
    assert out["delete_scope_not_empty"].startswith("ValueError")


def check_per_key_order(events: list[str], count: int) -> None:
    numbers = sorted(int(e.split(":")[1]) for e in events)
    assert numbers == list(range(count)), "lost or duplicated events"
    last: dict[str, int] = {}
    for event in events:
        key, number = event.split(":")
        if key != "nokey":
            assert last.get(key, -1) < int(number), f"key {key} out of order"
            last[key] = int(number)


def test_write_and_read_with_and_without_routing_keys(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "write_read", scope=unique("wr"), stream="s", count=1000)
    check_per_key_order(out["events"], 1000)


def test_async_writes(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "write_async", scope=unique("wa"), stream="s", count=200)
    assert out["events"] == sorted(f"e{i}" for i in range(200))


def test_large_event_over_8_mib(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "large_event", scope=unique("big"), stream="s", size=9 * 1024 * 1024)
    assert out["sizes"] == [12, 9 * 1024 * 1024, 11]
    assert out["big_ok"] is True


def test_writes_fail_after_seal(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "write_after_seal", scope=unique("seal"), stream="s")
    assert out["after_seal"] != "accepted"
    assert out["events"] == ["before"]


def test_transactions_commit_abort(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "transactions", scope=unique("txn"), stream="s")
    assert out["open_before"] is True
    assert out["txn_id_is_int"] is True
    assert out["open_after_commit"] is False and out["open_after_abort"] is False
    assert out["reopened_open"] is False
    assert out["write_after_commit"].startswith("TxnFailedException")
    assert out["events"] == sorted([f"c{i}" for i in range(10)] + ["s0"])


def test_reader_groups_two_readers_offline_and_tail(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "reader_groups", scope=unique("rg"), stream="s", deadline=150)
    assert out["events"] == sorted(f"e{i}" for i in range(200))
    assert out["tail_events"] == sorted(f"e{i}" for i in range(200, 210))
    assert len(out["cut"]) == 4


def test_byte_stream(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "byte_stream", scope=unique("bs"), stream="s")
    assert out["written"] == 100
    assert out["tail"] == 100 and out["head"] == 0
    assert out["seek"] == 10
    assert out["read"] == ("0123456789" * 3)[:out["read_n"]]
    assert out["read_n"] > 0
    assert out["head_after_truncate"] == 50
    assert out["seek_end"] == 100
    assert out["after_truncate_read"] == "01234"
    assert out["seal"] is True


def test_reading_continues_across_manual_scale_in_key_order(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "read_across_scale", scope=unique("scale"), stream="s", deadline=150)
    assert out["split"] == [(1 << 32) | 2, (1 << 32) | 3]
    assert out["merged"] == [(2 << 32) | 4]
    assert sorted(out["current"]) == sorted([1, (2 << 32) | 4])
    check_per_key_order(out["events"], 900)


def test_reader_group_from_a_stream_cut(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "reader_group_from_stream_cut", scope=unique("cut"), stream="s")
    assert out["first"] == [f"e{i}" for i in range(20)]
    assert out["offsets"] == [i * 10 for i in range(10)] + [100 + i * 11 for i in range(10)]
    assert out["cut"] == {"0": 210}
    assert out["rest"] == [f"e{i}" for i in range(20, 30)]


def test_scope_listing_pages_past_one_thousand(shared_standalone: Standalone) -> None:
    out = run_official(shared_standalone, "scope_paging", prefix=unique("page"), count=1005, deadline=150)
    assert out == {"listed": 1005, "distinct": 1005}
