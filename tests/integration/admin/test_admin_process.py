"""The admin endpoint of a real ``anabranch standalone`` and ``anabranch stream describe`` (through the admin
endpoint and through the public gRPC API) after writes, a manual scale and a truncation."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from anabranch.client.config import ClientConfig, ScalingPolicy, StreamConfiguration
from anabranch.client.stream_manager import StreamManager
from anabranch.testing.processes import HOST, Standalone, free_port, wait_for_port

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Standalone, str]]:
    admin_port = free_port()
    process = Standalone(tmp_path_factory.mktemp("admin") / "data", None, None, "--admin-port", str(admin_port),
                         "--containers", "4")
    process.start()
    try:
        wait_for_port(HOST, admin_port, 30, process.process)
        yield process, f"http://{HOST}:{admin_port}"
    finally:
        process.kill()


def http(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "anabranch", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


async def prepare(controller_uri: str, scope: str, stream: str) -> list[int]:
    """Two segments with data, then segment 0 split in two; returns the ids of the new segments."""
    async with StreamManager(ClientConfig(controller_uri)) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(2)))
        writer = manager.create_writer(scope, stream)
        for i in range(20):
            await writer.write_event(f"event-{i}", routing_key=f"key-{i}")
        await writer.flush()
        segments = await manager.get_current_segments(scope, stream)
        result = await manager.controller.scale_and_wait(scope, stream, [segments[0].segment_id],
                                                         [(0.0, 0.25), (0.25, 0.5)])
        return [s.segment_id for s in result.new_segments]


def test_endpoints(server: tuple[Standalone, str]) -> None:
    process, admin = server
    asyncio.run(asyncio.wait_for(prepare(process.controller_uri, "adm", "st"), 60))
    assert json.loads(http(f"{admin}/health")[2]) == {"status": "ok"}
    assert "adm" in json.loads(http(f"{admin}/scopes")[2])["scopes"]
    assert json.loads(http(f"{admin}/scopes/adm/streams")[2]) == {"scope": "adm", "streams": ["st"]}
    status, _, body = http(f"{admin}/streams/adm/st")
    d = json.loads(body)
    assert status == 200 and d["state"] == "ACTIVE" and d["active_epoch"] == 1
    assert [e["reason"] for e in d["epochs"]] == ["created", "manual scale"]
    assert d["epochs"][1]["splits"][0]["segment"] == 0
    assert d["total_bytes"] > 0
    status, _, body = http(f"{admin}/streams/adm/missing")
    assert status == 404 and "does not exist" in json.loads(body)["error"]
    status, content_type, body = http(f"{admin}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["anabranch_segmentstore_containers"].samples[0].value == 4
    appends = families["anabranch_segmentstore_appends"]
    assert appends.type == "counter" and sum(s.value for s in appends.samples) > 0
    assert {s.labels["container"] for s in appends.samples} == {"0", "1", "2", "3"}
    latency = families["anabranch_segmentstore_append_latency_seconds"]
    assert latency.type == "histogram"
    assert sum(s.value for s in latency.samples if s.name.endswith("_count")) > 0
    stream_bytes = families["anabranch_segmentstore_stream_append_bytes"].samples
    assert any(s.labels["stream"] == "adm/st" and s.value > 0 for s in stream_bytes)
    assert families["anabranch_controller_scales"].samples[0].labels["reason"] == "manual scale"
    assert "anabranch_controller_streams" in families and "anabranch_process_resident_memory_bytes" in families
    status, _, body = http(f"{admin}/")
    assert status == 200 and b"/console/adm/st" in body

    # Every series the Grafana dashboard in docs/ queries is in a real scrape.
    dashboard = json.loads((Path(__file__).parents[3] / "docs" / "grafana-dashboard.json").read_text())
    queried = {re.sub(r"_(total|bucket|count|sum)$", "", name) for p in dashboard["panels"] for t in p["targets"]
               for name in re.findall(r"anabranch_[a-z0-9_]+", t["expr"])}
    assert queried and queried <= set(families), queried - set(families)


def describe(process: Standalone, name: str, *extra: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cli("stream", "describe", name, "--controller", process.controller_uri,
                                            "--json", *extra).stdout)
    return result


def test_describe_after_scale_and_truncate(server: tuple[Standalone, str]) -> None:
    process, admin = server
    new_ids = asyncio.run(asyncio.wait_for(prepare(process.controller_uri, "desc", "st"), 60))
    before = describe(process, "desc/st", "--admin", admin)
    cli("stream", "truncate", "desc/st", "--to-tail", "--controller", process.controller_uri)
    via_admin = describe(process, "desc/st", "--admin", admin)
    via_grpc = describe(process, "desc/st")

    assert before["total_bytes"] > 0 and via_admin["total_bytes"] == 0
    assert via_admin["head"] == via_admin["tail"] == before["tail"]
    truncation = via_admin["retention"]["truncation"]
    assert truncation["cut"] == before["tail"] and truncation["done"] is True
    assert [s["id"] for s in via_admin["segments"]] == [*new_ids, 1]
    assert [e["reason"] for e in via_admin["epochs"]] == ["created", "manual scale"]

    # The public APIs give the same segments, cuts and epochs, without times and reasons.
    for key in ("state", "config", "segments", "head", "tail", "total_bytes", "active_epoch"):
        assert via_grpc[key] == via_admin[key], key
    assert [e["segments"] for e in via_grpc["epochs"]] == [e["segments"] for e in via_admin["epochs"]]
    assert [e["splits"] for e in via_grpc["epochs"]] == [e["splits"] for e in via_admin["epochs"]]
    assert all(e["reason"] is None and e["creation_time"] is None for e in via_grpc["epochs"])

    table = cli("stream", "describe", "desc/st", "--controller", process.controller_uri, "--admin", admin).stdout
    assert "manual scale" in table and "segments" in table and "epochs" in table
    assert "0 → 2 3" in table


def test_describe_errors(server: tuple[Standalone, str]) -> None:
    process, admin = server
    for extra in ((), ("--admin", admin)):
        result = subprocess.run([sys.executable, "-m", "anabranch", "stream", "describe", "nope/none",
                                 "--controller", process.controller_uri, *extra],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and "does not exist" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
