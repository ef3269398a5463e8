"""S3 chunk storage against a real local S3 HTTP server (moto), and ChunkedSegmentStorage on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_s3 import S3ChunkStorage, S3StorageError
from anabranch.testing.lts_conformance import ChunkStorageConformance, SegmentStorageConformance, StorageFactory


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def make_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"lts-{uuid.uuid4().hex[:12]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


class TestS3ChunkStorage(ChunkStorageConformance):
    @pytest.fixture
    def chunk_storage(self, s3_endpoint: str, bucket: str) -> S3ChunkStorage:
        return S3ChunkStorage(bucket, "anabranch/", make_client(s3_endpoint))


class TestChunkedSegmentStorageOnS3(SegmentStorageConformance):
    @pytest.fixture
    def storage_factory(self, s3_endpoint: str, bucket: str) -> StorageFactory:
        async def open_storage() -> ChunkedSegmentStorage:
            chunks = S3ChunkStorage(bucket, "lts/", make_client(s3_endpoint))
            storage = ChunkedSegmentStorage(chunks, max_chunk_size=256, namespace="container-2", snapshot_every=9)
            await storage.open()
            return storage

        return open_storage


async def test_prefix_isolates_storages(s3_endpoint: str, bucket: str) -> None:
    client = make_client(s3_endpoint)
    first, second = S3ChunkStorage(bucket, "one/", client), S3ChunkStorage(bucket, "two/", client)
    await first.create("c")
    await first.write("c", 0, b"first")
    assert not await second.exists("c")
    assert await second.list() == []
    assert client.get_object(Bucket=bucket, Key="one/c")["Body"].read() == b"first"


async def test_unreachable_endpoint_is_a_retriable_error() -> None:
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=boto3.session.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
    )
    with pytest.raises(S3StorageError) as raised:
        await S3ChunkStorage("nobucket", "", client).length("c")
    assert raised.value.retriable
