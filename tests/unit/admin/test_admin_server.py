"""``AdminServer`` over a controller on the in-memory segment store, through real HTTP on a free port:
the plain JSON routes, Pravega's REST v1 (paths, shapes, codes), typed metrics, console data; plus pure pieces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from anabranch.admin.console import stream_view
from anabranch.admin.metrics import SEGMENT_STORE, SegmentStoreMetrics, stream_of
from anabranch.admin.pages import console_page, stream_page
from anabranch.admin.rest import RestError, stream_config, stream_property
from anabranch.admin.server import AdminServer, start_admin
from anabranch.controller.facade import Controller
from anabranch.controller.records import RetentionConfig, ScalingConfig, StreamConfiguration
from anabranch.controller.segment_helper_memory import InMemorySegmentStore
from anabranch.model.names import qualified_segment_name


@pytest.fixture
async def admin() -> AsyncIterator[AdminServer]:
    c = Controller(InMemorySegmentStore(), "127.0.0.1", 12345)
    await c.bootstrap()
    assert await c.streams.create_scope("sc") == "SUCCESS"
    assert await c.streams.create_stream("sc", "st", StreamConfiguration(ScalingConfig(0, 0, 0, 2))) == "SUCCESS"
    assert isinstance(c.ctx.ops, InMemorySegmentStore)
    c.ctx.ops.append(qualified_segment_name("sc", "st", 0), 12)
    stats = {0: {"appends": 3, "cache_bytes": 7, "segments": 2}, 1: {"appends": 1, "cache_bytes": 0}}
    async with AdminServer(c, container_stats=lambda: stats, port=0, counts_refresh=0.05) as server:
        yield server


async def call(admin: AdminServer, method: str, path: str, body: Any = None, *,
               raw: bytes | None = None) -> tuple[int, str, Any]:
    url = f"http://127.0.0.1:{admin.port}{path}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session, \
            session.request(method, url, json=body, data=raw) as reply:
        content_type = reply.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            return reply.status, content_type, await reply.json()
        return reply.status, content_type, await reply.read()


async def get_json(admin: AdminServer, path: str, expect: int = 200) -> Any:
    status, content_type, body = await call(admin, "GET", path)
    assert status == expect, body
    assert content_type.startswith("application/json")
    return body


async def test_health(admin: AdminServer) -> None:
    assert await get_json(admin, "/health") == {"status": "ok"}
    health = await get_json(admin, "/v1/health")
    assert health["status"] == "UP" and health["readiness"] is True and health["liveness"] is True
    assert await get_json(admin, "/v1/health/liveness") is True
    assert await get_json(admin, "/v1/health/readiness") is True


async def test_plain_scopes_and_streams(admin: AdminServer) -> None:
    assert await get_json(admin, "/scopes") == {"scopes": ["sc"]}
    assert "_system" in (await get_json(admin, "/scopes?all=1"))["scopes"]
    assert await get_json(admin, "/scopes/sc/streams") == {"scope": "sc", "streams": ["st"]}
    assert "does not exist" in (await get_json(admin, "/scopes/nope/streams", 404))["error"]


async def test_stream_description(admin: AdminServer) -> None:
    d = await get_json(admin, "/streams/sc/st")
    assert d["state"] == "ACTIVE" and d["total_bytes"] == 12
    assert [s["length"] for s in d["segments"]] == [12, 0]
    assert d["epochs"][0]["reason"] == "created"
    assert (await get_json(admin, "/streams/sc/nope", 404)) == {"error": "stream sc/nope does not exist"}


async def test_rest_scopes(admin: AdminServer) -> None:
    assert await get_json(admin, "/v1/scopes") == {"scopes": [{"scopeName": "sc"}]}
    assert await call(admin, "POST", "/v1/scopes", {"scopeName": "new"}) == (201, "application/json; charset=utf-8",
                                                                            {"scopeName": "new"})
    assert (await call(admin, "POST", "/v1/scopes", {"scopeName": "new"}))[0] == 409
    assert (await call(admin, "POST", "/v1/scopes", {"scopeName": "bad name!"}))[0] == 400
    assert (await call(admin, "POST", "/v1/scopes", raw=b"{not json"))[0] == 400
    assert await get_json(admin, "/v1/scopes/new") == {"scopeName": "new"}
    assert (await call(admin, "GET", "/v1/scopes/none"))[0] == 404
    status, _, body = await call(admin, "DELETE", "/v1/scopes/sc")
    assert status == 412 and "streams st" in body["error"]
    assert (await call(admin, "DELETE", "/v1/scopes/new"))[0] == 204
    assert (await call(admin, "DELETE", "/v1/scopes/new"))[0] == 404


async def test_rest_stream_lifecycle(admin: AdminServer) -> None:
    request = {"streamName": "s2", "scalingPolicy": {"type": "BY_RATE_IN_EVENTS_PER_SEC", "targetRate": 100,
                                                      "scaleFactor": 2, "minSegments": 3},
               "retentionPolicy": {"type": "LIMITED_SIZE_MB", "value": 5, "maxValue": 10}, "streamTags": ["t1"]}
    status, _, created = await call(admin, "POST", "/v1/scopes/sc/streams", request)
    assert status == 201
    assert created == {"scopeName": "sc", "streamName": "s2",
                       "scalingPolicy": {"type": "BY_RATE_IN_EVENTS_PER_SEC", "targetRate": 100, "scaleFactor": 2,
                                         "minSegments": 3},
                       "retentionPolicy": {"type": "LIMITED_SIZE_MB", "value": 5, "maxValue": 10}, "tags": ["t1"]}
    assert (await call(admin, "POST", "/v1/scopes/sc/streams", request))[0] == 409
    assert (await call(admin, "POST", "/v1/scopes/none/streams", request))[0] == 404
    bad = {"streamName": "s3", "scalingPolicy": {"type": "SOMETIMES"}}
    status, _, body = await call(admin, "POST", "/v1/scopes/sc/streams", bad)
    assert status == 400 and "FIXED_NUM_SEGMENTS" in body["error"]
    assert await get_json(admin, "/v1/scopes/sc/streams/s2") == created
    names = [s["streamName"] for s in (await get_json(admin, "/v1/scopes/sc/streams"))["streams"]]
    assert names == ["s2", "st"]
    tagged = await get_json(admin, "/v1/scopes/sc/streams?filter_type=tag&filter_value=t1")
    assert [s["streamName"] for s in tagged["streams"]] == ["s2"]

    update = {"retentionPolicy": {"type": "LIMITED_DAYS", "value": 2, "maxValue": 3}}
    status, _, updated = await call(admin, "PUT", "/v1/scopes/sc/streams/s2", update)
    assert status == 200 and updated["scalingPolicy"] == created["scalingPolicy"]
    assert updated["retentionPolicy"]["type"] == "LIMITED_DAYS" and updated["retentionPolicy"]["value"] == 2
    assert updated["retentionPolicy"]["timeBasedRetention"] == {"days": 2, "hours": 0, "minutes": 0}
    assert (await call(admin, "PUT", "/v1/scopes/sc/streams/none", update))[0] == 404

    status, _, body = await call(admin, "DELETE", "/v1/scopes/sc/streams/s2")
    assert status == 412 and "not sealed" in body["error"]
    assert (await call(admin, "PUT", "/v1/scopes/sc/streams/s2/state", {"streamState": "OPEN"}))[0] == 400
    assert await call(admin, "PUT", "/v1/scopes/sc/streams/s2/state", {"streamState": "SEALED"}) == (
        200, "application/json; charset=utf-8", {"streamState": "SEALED"})
    assert (await call(admin, "DELETE", "/v1/scopes/sc/streams/s2"))[0] == 204
    assert (await call(admin, "GET", "/v1/scopes/sc/streams/s2"))[0] == 404


async def test_rest_internal_stream_filter_and_reader_groups(admin: AdminServer) -> None:
    assert await admin.controller.streams.create_stream("sc", "_hidden", StreamConfiguration()) == "SUCCESS"
    plain = [s["streamName"] for s in (await get_json(admin, "/v1/scopes/sc/streams"))["streams"]]
    internal = await get_json(admin, "/v1/scopes/sc/streams?filter_type=showInternalStreams&filter_value=true")
    assert "_hidden" not in plain and "_hidden" in [s["streamName"] for s in internal["streams"]]
    assert await get_json(admin, "/v1/scopes/sc/readergroups") == {"readerGroups": []}
    assert (await call(admin, "GET", "/v1/scopes/sc/readergroups/none"))[0] == 404
    assert (await call(admin, "GET", "/v1/scopes/none/readergroups"))[0] == 404


async def test_rest_scaling_events(admin: AdminServer) -> None:
    c = admin.controller
    segments = (await c.ctx.epoch(await c.ctx.view("sc", "st"), 0)).sorted_segments()
    await c.scaling.scale("sc", "st", [segments[0].id], [(0.0, 0.25), (0.25, 0.5)])
    events = (await get_json(admin, "/v1/scopes/sc/streams/st/scaling-events?from=0&to=9999999999999"))
    events = events["scalingEvents"]
    assert len(events) == 2
    assert [(s["number"], s["keyStart"], s["keyEnd"]) for s in events[0]["segmentList"]] == [(0, 0.0, 0.5),
                                                                                             (1, 0.5, 1.0)]
    assert events[1]["splits"] == 1 and events[1]["merges"] == 0
    assert [s["number"] for s in events[1]["segmentList"]] == [2, 3, 1]
    later = await get_json(admin, f"/v1/scopes/sc/streams/st/scaling-events?from={events[1]['timestamp']}&to="
                                  f"{events[1]['timestamp'] + 1}")
    assert len(later["scalingEvents"]) == 1
    assert (await call(admin, "GET", "/v1/scopes/sc/streams/st/scaling-events"))[0] == 400
    assert (await call(admin, "GET", "/v1/scopes/sc/streams/no/scaling-events?from=0&to=1"))[0] == 404


async def test_metrics_are_typed_with_help(admin: AdminServer) -> None:
    SEGMENT_STORE.appended(0, "sc/st/0.#epoch.0", 100, 0.002)
    await asyncio.sleep(0.2)  # the counts snapshot refreshes every 0.05 s in this fixture
    status, content_type, body = await call(admin, "GET", "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for family in families.values():
        assert family.documentation, f"{family.name} has no HELP"
    assert families["anabranch_segmentstore_appends"].type == "counter"
    samples = {(s.name, s.labels["container"]): s.value for s in families["anabranch_segmentstore_appends"].samples}
    total = "anabranch_segmentstore_appends_total"
    assert samples == {(total, "0"): 3, (total, "1"): 1}
    assert families["anabranch_segmentstore_cache_bytes"].type == "gauge"
    assert families["anabranch_segmentstore_append_latency_seconds"].type == "histogram"
    assert families["anabranch_segmentstore_append_size_bytes"].type == "histogram"
    assert families["anabranch_controller_streams"].samples[0].value == 1
    assert families["anabranch_controller_scopes"].samples[0].value == 1
    assert "anabranch_process_cpu_seconds" in families
    assert families["anabranch_admin_requests"].type == "counter"


async def test_console(admin: AdminServer) -> None:
    status, content_type, body = await call(admin, "GET", "/")
    assert status == 200 and content_type.startswith("text/html")
    assert b'href="/console/sc/st"' in body and b'href="/streams/sc/st"' in body
    status, _, body = await call(admin, "GET", "/console/sc/st")
    assert status == 200 and b"<h1>sc/st</h1>" in body and b'id="keyspace"' in body
    assert (await call(admin, "GET", "/console/sc/nope"))[0] == 404
    data = await get_json(admin, "/console/sc/st/data")
    assert [(s["number"], s["key_start"], s["key_end"], s["active"]) for s in data["segments"]] == [
        (0, 0.0, 0.5, True), (1, 0.5, 1.0, True)]
    assert data["head"] == [{"segment": 0, "offset": 0}, {"segment": 1, "offset": 0}]
    assert data["reader_groups"] == [] and data["cluster"] is None


async def test_errors(admin: AdminServer) -> None:
    assert "GET /nothing/here" in (await get_json(admin, "/nothing/here", 404))["error"]
    status, _, body = await call(admin, "POST", "/health")
    assert status == 405 and "error" in body
    reader, writer = await asyncio.open_connection("127.0.0.1", admin.port)
    writer.write(b"nonsense\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert reply.split(b" ", 2)[1] == b"400"


async def test_start_admin_port_zero_is_off_and_busy_port_is_not_fatal(admin: AdminServer) -> None:
    assert await start_admin(admin.controller, "127.0.0.1", 0) is None
    assert await start_admin(admin.controller, "127.0.0.1", admin.port) is None


async def test_authentication_leaves_probes_open() -> None:
    from anabranch.auth.errors import AuthError

    def check(header: str | None) -> object:
        if header != "Basic good":
            raise AuthError("bad credentials")
        return header

    c = Controller(InMemorySegmentStore(), "127.0.0.1", 12345)
    await c.bootstrap()
    async with AdminServer(c, port=0, authenticate=check) as server:
        assert (await call(server, "GET", "/health"))[0] == 200
        status, _, body = await call(server, "GET", "/v1/scopes")
        assert status == 401 and body == {"error": "bad credentials"}
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{server.port}/v1/scopes", headers={"Authorization": "Basic good"}) as reply:
            assert reply.status == 200


def test_pure_pieces() -> None:
    page = console_page({"<s>": ["a&b"]})
    assert "&lt;s&gt;" in page and "a&amp;b" in page and "<s>" not in page
    assert "No scopes yet" in console_page({})
    assert "</script><" not in stream_page("sc", "</script><b>", 500).split("<script>", 1)[1].split("</script>")[0]
    assert stream_of("sc/st/3.#epoch.1") == "sc/st" and stream_of("_system/_tables") == "_system/_tables"
    config = StreamConfiguration(ScalingConfig(1, 10, 2, 1), RetentionConfig(1, 90_000_000, 0), ("a",))
    prop = stream_property("s", "t", config)
    assert prop["retentionPolicy"]["timeBasedRetention"] == {"days": 1, "hours": 1, "minutes": 0}
    assert stream_config({"streamTags": ["a"], "scalingPolicy": prop["scalingPolicy"],
                          "retentionPolicy": prop["retentionPolicy"]}) == config
    with pytest.raises(RestError):
        stream_config({"scalingPolicy": {"minSegments": 0}})


def test_stream_label_is_bounded() -> None:
    from prometheus_client import CollectorRegistry

    m = SegmentStoreMetrics(CollectorRegistry(), max_streams=2)
    for stream in ("a/x", "a/y", "a/z", "a/w"):
        m.appended(0, f"{stream}/0.#epoch.0", 10, 0.001)
    families = {f.name: f for f in m.collect()}
    samples = families["anabranch_segmentstore_stream_append_bytes"].samples
    assert {s.labels["stream"]: s.value for s in samples} == {"a/x": 10, "a/y": 10, "_other": 20}


def test_data_path_histograms_count_each_observation_in_its_bucket() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    registry = CollectorRegistry()
    m = SegmentStoreMetrics(registry)
    for seconds in (0.0004, 0.0005, 0.003, 20.0):
        m.appended(1, "a/x/0.#epoch.0", 100, seconds)
    m.read(2, "a/x/0.#epoch.0", 5000, 0.01)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    latency = {(s.name, s.labels["container"], s.labels.get("le")): s.value
               for s in families["anabranch_segmentstore_append_latency_seconds"].samples}
    name = "anabranch_segmentstore_append_latency_seconds"
    assert latency[(f"{name}_bucket", "1", "0.0005")] == 2  # le: a value equal to a bound is in its bucket
    assert latency[(f"{name}_bucket", "1", "0.005")] == 3
    assert latency[(f"{name}_bucket", "1", "10.0")] == 3
    assert latency[(f"{name}_bucket", "1", "+Inf")] == 4
    assert latency[(f"{name}_count", "1", None)] == 4
    assert abs(latency[(f"{name}_sum", "1", None)] - 20.0039) < 1e-9
    sizes = families["anabranch_segmentstore_read_size_bytes"].samples
    buckets = {(s.labels.get("le"), s.value) for s in sizes if s.name.endswith("_bucket")}
    assert buckets >= {("4096.0", 0), ("16384.0", 1)}
    assert families["anabranch_segmentstore_stream_read_bytes"].type == "counter"
    assert [s.value for s in families["anabranch_segmentstore_stream_read_bytes"].samples] == [5000]


def test_stream_view_lifetimes() -> None:
    description = {
        "scope": "s", "stream": "t", "state": "ACTIVE", "active_epoch": 1, "total_bytes": 5,
        "epochs": [{"epoch": 0, "creation_time_ms": 1000, "reason": "created", "created": [0, 1], "sealed": [],
                    "splits": [], "merges": []},
                   {"epoch": 1, "creation_time_ms": 2000, "reason": "manual scale", "created": [(1 << 32) | 2],
                    "sealed": [0, 1], "splits": [], "merges": [{"segments": [0, 1], "into": (1 << 32) | 2}]}],
        "segments": [{"id": (1 << 32) | 2, "length": 5}], "head": [{"segment": 0, "offset": 0}],
        "tail": [{"segment": (1 << 32) | 2, "offset": 5}],
    }
    ranges = {0: (0.0, 0.5), 1: (0.5, 1.0), (1 << 32) | 2: (0.0, 1.0)}
    view = stream_view(description, ranges, 3000)
    assert [(s["number"], s["from_ms"], s["to_ms"], s["active"]) for s in view["segments"]] == [
        (0, 1000, 2000, False), (1, 1000, 2000, False), (2, 2000, None, True)]
    assert view["tail"] == [{"segment": 2, "offset": 5}] and view["epochs"][1]["merges"] == 1


class FakeZk:
    """The three reads ``zk_cluster_info`` makes, over a dict of znodes (a unit-test stand-in for ``ZkClient``)."""

    def __init__(self, nodes: dict[str, bytes]) -> None:
        self.nodes = nodes

    async def get_or_none(self, path: str) -> tuple[bytes, object] | None:
        return (self.nodes[path], object()) if path in self.nodes else None

    async def exists(self, path: str) -> object | None:
        return object() if any(p == path or p.startswith(path + "/") for p in self.nodes) else None

    async def get_children(self, path: str) -> list[str]:
        return sorted({p[len(path) + 1:].split("/")[0] for p in self.nodes if p.startswith(path + "/")})


async def test_cluster_section_from_zookeeper_layout() -> None:
    from anabranch.admin.console import zk_cluster_info
    from anabranch.cluster.layout import ClusterPaths, ContainerMap, HostRecord

    paths = ClusterPaths.for_cluster("t")
    zk = FakeZk({paths.container_map: ContainerMap({"ss-a": (0, 2), "ss-b": (1, 3)}, 4).encode(),
                 paths.host("ss-a"): HostRecord("ss-a", "127.0.0.1", 6000).encode()})
    info = await zk_cluster_info(zk, paths)()
    assert info == {"root": "/anabranch/t", "hosts": [
        {"host": "ss-a", "endpoint": "127.0.0.1:6000", "live": True, "containers": [0, 2]},
        {"host": "ss-b", "endpoint": None, "live": False, "containers": [1, 3]}]}

    c = Controller(InMemorySegmentStore(), "127.0.0.1", 12345)
    await c.bootstrap()
    assert await c.streams.create_scope("sc") == "SUCCESS"
    assert await c.streams.create_stream("sc", "st", StreamConfiguration()) == "SUCCESS"

    async def broken() -> dict[str, Any] | None:
        raise ConnectionError("ZooKeeper is away")

    for source, check in ((zk_cluster_info(zk, paths), lambda d: d["hosts"][0]["containers"] == [0, 2]),
                          (broken, lambda d: "ZooKeeper is away" in d["error"])):
        async with AdminServer(c, port=0, cluster_info=source) as server:
            assert check((await get_json(server, "/console/sc/st/data"))["cluster"])
