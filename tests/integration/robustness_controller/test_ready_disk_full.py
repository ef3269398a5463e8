"""``/ready`` of a real ``anabranch standalone`` whose data directory fills up: 503 naming the full container
while the disk is full, 200 again once space is freed and a write went through. Needs ``mount -t tmpfs`` (root);
skipped otherwise. The other reasons are covered in tests/unit/robustness_controller/test_readiness.py."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anabranch.client.connection import next_request_id
from anabranch.protocol.commands import CreateSegment, DataAppended, ErrorMessage, SegmentCreated
from anabranch.testing.faults import fill_disk, small_filesystem
from anabranch.testing.processes import HOST, Standalone, free_port, wait_for_port
from tests.integration.robustness.robustness_helpers import append, connect

pytestmark = pytest.mark.process
SEGMENT = "ready/s/0.#epoch.0"
TIMEOUT = 30.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / "disk") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        yield tmp_path / "disk"



def ready(admin: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{admin}/ready", timeout=TIMEOUT) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _append(port: int, payload: bytes) -> object:
    conn = await connect(port)
    try:
        return await append(conn, SEGMENT, [payload])
    finally:
        await conn.close()


def test_ready_follows_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    admin_port = free_port()
    server = Standalone(small_disk / "data", None, None, "--admin-port", str(admin_port))
    server.log_path = tmp_path / "server.log"
    admin = f"http://{HOST}:{admin_port}"
    with server:
        wait_for_port(HOST, admin_port, TIMEOUT, server.process)
        assert ready(admin)[0] == 200

        async def create() -> object:
            conn = await connect(server.segmentstore_port)
            try:
                return await conn.request(CreateSegment(next_request_id(), SEGMENT), timeout=TIMEOUT)
            finally:
                await conn.close()

        assert isinstance(asyncio.run(create()), SegmentCreated)
        filler = small_disk / "filler"
        fill_disk(filler)
        assert isinstance(asyncio.run(_append(server.segmentstore_port, b"x" * 300_000)), ErrorMessage)
        status, body = ready(admin)
        assert status == 503 and body["ready"] is False
        assert any("disk_full" in reason for reason in body["reasons"]), body
        filler.unlink()
        deadline = time.monotonic() + TIMEOUT
        while not isinstance(asyncio.run(_append(server.segmentstore_port, b"after")), DataAppended):
            assert time.monotonic() < deadline, "writes did not resume"
            time.sleep(0.2)
        while ready(admin)[0] != 200:
            assert time.monotonic() < deadline, f"/ready stayed {ready(admin)}"
            time.sleep(0.2)
