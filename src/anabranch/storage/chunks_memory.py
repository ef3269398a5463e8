"""In-memory LTS chunk storage (for tests and for the embedded server without disk).

Owns a dict of chunk name -> bytearray. Same contract as every ``ChunkStorage``: writes go at the
chunk's current length (or only once at offset 0 when ``supports_append`` is False, to mimic an
object store), reads return at most the bytes present, names follow ``chunk_rules``.
"""

from __future__ import annotations

from collections.abc import Sequence

from anabranch.storage.chunk_rules import check_read_range, check_write_offset, validate_chunk_name
from anabranch.storage.interfaces import Buffer, ChunkExistsError, ChunkNotFoundError, buffers_of


class InMemoryChunkStorage:
    """Chunks kept in memory. ``supports_append=False`` behaves like an object store (one write per chunk)."""

    def __init__(self, *, supports_append: bool = True) -> None:
        self._chunks: dict[str, bytearray] = {}
        self._supports_append = supports_append

    @property
    def supports_append(self) -> bool:
        return self._supports_append

    def _get(self, name: str) -> bytearray:
        try:
            return self._chunks[name]
        except KeyError:
            raise ChunkNotFoundError(f"chunk {name!r} does not exist") from None

    async def create(self, name: str) -> None:
        validate_chunk_name(name)
        if name in self._chunks:
            raise ChunkExistsError(f"chunk {name!r} already exists")
        self._chunks[name] = bytearray()

    async def write(self, name: str, offset: int, data: Buffer | Sequence[Buffer]) -> int:
        chunk = self._get(name)
        check_write_offset(name, offset, len(chunk), self._supports_append)
        before = len(chunk)
        for part in buffers_of(data):
            chunk += part
        return len(chunk) - before

    async def read(self, name: str, offset: int, length: int) -> bytes:
        chunk = self._get(name)
        check_read_range(name, offset, length, len(chunk))
        return bytes(chunk[offset : offset + length])

    async def length(self, name: str) -> int:
        return len(self._get(name))

    async def exists(self, name: str) -> bool:
        return name in self._chunks

    async def delete(self, name: str) -> None:
        self._get(name)
        del self._chunks[name]

    async def list(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self._chunks if name.startswith(prefix))
