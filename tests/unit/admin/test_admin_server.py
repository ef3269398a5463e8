"""``AdminServer`` over a controller on the in-memory segment store, through real HTTP on a free port;
plus the pure page renderers."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

from anabranch.admin.pages import console_page, metric_name, prometheus_text
from anabranch.admin.server import AdminServer, start_admin
from anabranch.controller.facade import Controller
from anabranch.controller.records import ScalingConfig, StreamConfiguration
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
    async with AdminServer(c, segment_store_stats=lambda: {"appends": 3, "cache-bytes": 7}, port=0) as server:
        yield server


def _get(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


async def get(admin: AdminServer, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    return await asyncio.wait_for(asyncio.to_thread(_get, f"http://127.0.0.1:{admin.port}{path}", method), 30)


async def get_json(admin: AdminServer, path: str, expect: int = 200) -> Any:
    status, content_type, body = await get(admin, path)
    assert status == expect, body
    assert content_type == "application/json"
    return json.loads(body)


async def test_health(admin: AdminServer) -> None:
    assert await get_json(admin, "/health") == {"status": "ok"}


async def test_scopes_and_streams(admin: AdminServer) -> None:
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


async def test_metrics(admin: AdminServer) -> None:
    status, content_type, body = await get(admin, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    lines = body.decode().splitlines()
    assert "anabranch_segmentstore_appends 3" in lines
    assert "anabranch_segmentstore_cache_bytes 7" in lines
    assert "anabranch_controller_scopes 1" in lines
    assert "anabranch_controller_streams 1" in lines
    assert "# TYPE anabranch_controller_streams untyped" in lines


async def test_console_pages(admin: AdminServer) -> None:
    status, content_type, body = await get(admin, "/")
    assert status == 200 and content_type.startswith("text/html")
    assert b'href="/console/sc/st"' in body and b'href="/streams/sc/st"' in body
    status, _, body = await get(admin, "/console/sc/st")
    assert status == 200 and b"<h1>sc/st</h1>" in body and b"created" in body


async def test_errors(admin: AdminServer) -> None:
    assert (await get_json(admin, "/nothing/here", 404))["error"].startswith("no such resource")
    assert (await get_json(admin, "/scopes/sc/other", 404))["error"].startswith("no such resource")
    status, _, body = await get(admin, "/health", method="POST")
    assert status == 405 and b"only GET" in body
    reader, writer = await asyncio.open_connection("127.0.0.1", admin.port)
    writer.write(b"nonsense\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 400 ")


async def test_start_admin_port_zero_is_off_and_busy_port_is_not_fatal(admin: AdminServer) -> None:
    assert await start_admin(admin.controller, "127.0.0.1", 0) is None
    assert await start_admin(admin.controller, "127.0.0.1", admin.port) is None


def test_pages_escape_and_name() -> None:
    assert metric_name("anabranch", "segmentstore", "cache-bytes") == "anabranch_segmentstore_cache_bytes"
    assert prometheus_text({"g": {"b": 2, "a": 1}}) == "# TYPE anabranch_g_a untyped\nanabranch_g_a 1\n" \
                                                       "# TYPE anabranch_g_b untyped\nanabranch_g_b 2\n"
    page = console_page({"<s>": ["a&b"]})
    assert "&lt;s&gt;" in page and "a&amp;b" in page and "<s>" not in page
    assert "No scopes yet" in console_page({})
