"""Serializers: how events become bytes and back.

A ``Serializer`` turns a value into the event payload and back; writers call ``serialize`` once per
event, readers ``deserialize`` once per event. Built in: raw bytes, UTF-8 strings, JSON.
"""

from __future__ import annotations

import json
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Serializer(Protocol[T]):
    """Converts events to and from bytes; implement it for your own event types."""

    def serialize(self, value: T) -> bytes: ...

    def deserialize(self, data: bytes | memoryview) -> T: ...


class BytesSerializer:
    """Events are bytes already (bytearray and memoryview are accepted and copied to bytes)."""

    def serialize(self, value: bytes | bytearray | memoryview) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        raise TypeError(f"BytesSerializer needs bytes, got {type(value).__name__}")

    def deserialize(self, data: bytes | memoryview) -> bytes:
        return bytes(data)


class StringSerializer:
    """Events are text, stored with one encoding (UTF-8 by default)."""

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding

    def serialize(self, value: str) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"StringSerializer needs str, got {type(value).__name__}")
        return value.encode(self.encoding)

    def deserialize(self, data: bytes | memoryview) -> str:
        return bytes(data).decode(self.encoding)


class JsonSerializer(Generic[T]):
    """Events are JSON documents (compact, UTF-8)."""

    def __init__(self, *, sort_keys: bool = False) -> None:
        self.sort_keys = sort_keys

    def serialize(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), sort_keys=self.sort_keys).encode()

    def deserialize(self, data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))


def default_serializer(value: object) -> Serializer[Any]:
    """The serializer a writer uses when none was given: bytes as they are, str as UTF-8."""
    return StringSerializer() if isinstance(value, str) else BytesSerializer()
