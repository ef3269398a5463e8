"""``anabranch segmentstore --lts-s3-bucket``: long-term storage in an S3-compatible bucket (a real local S3
HTTP server, moto), through the real process: data moves to the bucket and survives a kill -9 and restart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from segmentstore_helpers import connect, create_segment, event, read_all, setup_append

from anabranch.client.connection import next_request_id
from anabranch.protocol.commands import AppendBlockEnd, DataAppended
from anabranch.testing.processes import SegmentStoreProcess

pytestmark = pytest.mark.process
SEG = "scope/s3lts/0.#epoch.0"
PREFIX = "lts-test/"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, Any]]:
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = f"lts-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield endpoint, bucket, client
    finally:
        server.stop()


def bytes_in_bucket(client: Any, bucket: str) -> int:
    listing = client.list_objects_v2(Bucket=bucket, Prefix=PREFIX + "ns-")
    return sum(int(item["Size"]) for item in listing.get("Contents", []) if "/data/" in item["Key"])


async def test_segment_data_moves_to_s3_and_survives_a_crash(tmp_path: Path, s3: tuple[str, str, Any]) -> None:
    endpoint, bucket, client = s3
    server = SegmentStoreProcess(tmp_path / "data", None, "--lts-s3-bucket", bucket, "--lts-s3-prefix", PREFIX,
                                 "--lts-s3-endpoint", endpoint)
    server.start()
    try:
        conn = await connect(server)
        await create_segment(conn, SEG)
        writer = uuid.uuid4()
        await setup_append(conn, writer, SEG)
        payloads = [bytes([i]) * 4000 for i in range(50)]
        acked = asyncio.Event()

        def on_reply(reply: object) -> None:
            if isinstance(reply, DataAppended) and reply.event_number == len(payloads):
                acked.set()

        conn.add_listener(writer, on_reply)
        for number, payload in enumerate(payloads, start=1):
            data = event(payload)
            conn.send(AppendBlockEnd(writer, len(data), data, 1, number, next_request_id()))
        await asyncio.wait_for(acked.wait(), 30)
        expected = b"".join(event(p) for p in payloads)

        async def in_bucket() -> None:
            while await asyncio.to_thread(bytes_in_bucket, client, bucket) < len(expected):
                await asyncio.sleep(0.1)

        await asyncio.wait_for(in_bucket(), 30)
        await conn.close()
        server.restart()
        conn = await connect(server)
        try:
            assert await read_all(conn, SEG) == expected
        finally:
            await conn.close()
    finally:
        server.kill()


def test_endpoint_without_bucket_is_a_usage_error(tmp_path: Path) -> None:
    server = SegmentStoreProcess(tmp_path / "data", None, "--lts-s3-endpoint", "http://127.0.0.1:1")
    with pytest.raises(RuntimeError, match="exited with code 2"):
        server.start(timeout=30)
    assert "--lts-s3-endpoint needs --lts-s3-bucket" in server.log_text()
