"""Rules every ``ChunkStorage`` backend applies the same way: write offsets, read ranges, safe names.

Pure functions, no I/O. Chunk names are '/'-separated paths of safe components (letters, digits,
``._-~``; never ``.`` or ``..``), so a filesystem backend can map them to files and an object store
to keys unchanged. ``escape_component`` turns any string (segment names hold '/' and '#') into one.
"""

from __future__ import annotations

import hashlib
import re

from anabranch.storage.interfaces import BadStorageOffsetError, StorageError

_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9._~-]+")
_READABLE_PREFIX = 80


class InvalidChunkNameError(StorageError, ValueError):
    """A chunk name is not a '/'-separated path of safe components."""


def validate_chunk_name(name: str) -> str:
    """Return ``name`` if every '/'-separated component is safe, else raise ``InvalidChunkNameError``."""
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", "..") or _SAFE_COMPONENT.fullmatch(part) is None:
            raise InvalidChunkNameError(
                f"chunk name {name!r} must be '/'-separated components of letters, digits and ._-~"
            )
    return name


def escape_component(text: str) -> str:
    """A safe, readable, bounded name component that is unique per ``text``.

    Keeps a readable prefix (unsafe characters become '_') and appends a hash of the full text.
    """
    readable = re.sub(r"[^A-Za-z0-9.-]", "_", text)[:_READABLE_PREFIX]
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return f"{readable}~{digest}"


def check_write_offset(name: str, offset: int, current_length: int, supports_append: bool) -> None:
    """Raise ``BadStorageOffsetError`` unless a write at ``offset`` is allowed on a chunk of ``current_length``."""
    if offset != current_length:
        raise BadStorageOffsetError(
            f"write to chunk {name!r} at offset {offset}, but its length is {current_length}; writes must append"
        )
    if not supports_append and current_length > 0:
        raise BadStorageOffsetError(
            f"chunk {name!r} already holds {current_length} bytes and this storage cannot append; write a new chunk"
        )


def check_read_range(name: str, offset: int, length: int, current_length: int) -> None:
    """Raise ``BadStorageOffsetError`` for a negative range or an offset past the chunk's end."""
    if offset < 0 or length < 0 or offset > current_length:
        raise BadStorageOffsetError(
            f"read of chunk {name!r} at offset {offset} length {length} is outside [0, {current_length}]"
        )
