"""LTS chunks as objects in an S3-compatible bucket (boto3), for shared LTS in cluster mode.

Owns the keys ``<prefix><chunk name>`` of ``bucket``. Objects cannot be appended to, so
``supports_append`` is False: a chunk is created empty and written once, at offset 0, in one PUT.
Invariants: ``create`` is atomic (``If-None-Match: *``); the single write replaces the empty object
only if it is still empty (``If-Match`` on the empty object's ETag, falling back to a length check
for stores whose ETags are not MD5s); boto3 calls run in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from anabranch.storage.chunk_rules import check_read_range, check_write_offset, validate_chunk_name
from anabranch.storage.interfaces import Buffer, ChunkExistsError, ChunkNotFoundError, StorageError, buffers_of

_EMPTY_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3StorageError(StorageError):
    """The S3 endpoint failed a request (network, throttling, permissions); retrying may succeed."""

    retriable = True


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3ChunkStorage:
    """Chunks as S3 objects (not appendable: one write per chunk, at offset 0)."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._client = client

    @property
    def supports_append(self) -> bool:
        return False

    def _key(self, name: str) -> str:
        return self._prefix + validate_chunk_name(name)

    async def _call(self, operation: str, name: str, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._client, operation), Bucket=self._bucket, **kwargs)
        except ClientError as error:
            if _code(error) in _NOT_FOUND:
                raise ChunkNotFoundError(
                    f"chunk {name!r} does not exist in s3://{self._bucket}/{self._prefix}"
                ) from None
            raise
        except BotoCoreError as error:
            raise S3StorageError(
                f"S3 {operation} of chunk {name!r} in bucket {self._bucket!r} failed: {error}"
            ) from error

    def _wrap(self, operation: str, name: str, error: ClientError) -> S3StorageError:
        return S3StorageError(f"S3 {operation} of chunk {name!r} in bucket {self._bucket!r} failed: {error}")

    async def create(self, name: str) -> None:
        try:
            await self._call("put_object", name, Key=self._key(name), Body=b"", IfNoneMatch="*")
        except ClientError as error:
            if _code(error) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ChunkExistsError(f"chunk {name!r} already exists in s3://{self._bucket}") from None
            raise self._wrap("create", name, error) from error

    async def write(self, name: str, offset: int, data: Buffer | Sequence[Buffer]) -> int:
        parts = buffers_of(data)
        body = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes | bytearray) else b"".join(parts)
        size = len(body)
        if offset != 0:
            check_write_offset(name, offset, await self.length(name), False)
        try:
            await self._call("put_object", name, Key=self._key(name), Body=body, IfMatch=_EMPTY_ETAG)
        except ClientError as error:
            if _code(error) != "PreconditionFailed":
                raise self._wrap("write", name, error) from error
            check_write_offset(name, offset, await self.length(name), False)
            try:
                await self._call("put_object", name, Key=self._key(name), Body=body)
            except ClientError as retry_error:
                raise self._wrap("write", name, retry_error) from retry_error
        return size

    async def read(self, name: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            check_read_range(name, offset, length, 0)
        if length == 0:
            check_read_range(name, offset, length, await self.length(name))
            return b""
        try:
            response = await self._call(
                "get_object", name, Key=self._key(name), Range=f"bytes={offset}-{offset + length - 1}"
            )
        except ClientError as error:
            if _code(error) != "InvalidRange":
                raise self._wrap("read", name, error) from error
            check_read_range(name, offset, length, await self.length(name))
            return b""
        body = response["Body"]
        try:
            return bytes(await asyncio.to_thread(body.read))
        finally:
            body.close()

    async def length(self, name: str) -> int:
        try:
            response = await self._call("head_object", name, Key=self._key(name))
        except ClientError as error:
            raise self._wrap("head", name, error) from error
        return int(response["ContentLength"])

    async def exists(self, name: str) -> bool:
        try:
            await self.length(name)
        except ChunkNotFoundError:
            return False
        return True

    async def delete(self, name: str) -> None:
        await self.length(name)
        try:
            await self._call("delete_object", name, Key=self._key(name))
        except ClientError as error:
            raise self._wrap("delete", name, error) from error

    async def list(self, prefix: str = "") -> list[str]:
        try:
            keys = await asyncio.to_thread(_list_keys, self._client, self._bucket, self._prefix + prefix)
        except (ClientError, BotoCoreError) as error:
            raise S3StorageError(
                f"S3 listing of {self._prefix + prefix!r} in {self._bucket!r} failed: {error}"
            ) from error
        return sorted(key[len(self._prefix) :] for key in keys)


def _list_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys
