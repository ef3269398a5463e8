"""Readers and writers of the variable-length wire types (strings, buffers, lists, table records).

Each reader is ``read(buf, pos, end) -> (value, new_pos)`` over a memoryview holding one frame's
payload and raises :class:`ProtocolError` if the value does not fit before ``end``. Each writer
appends the encoded pieces of a value to a list (joined once by the caller). Fixed-size types
(integers, bools, UUIDs) are handled by the codec with precompiled ``struct.Struct`` formats;
this module knows nothing about commands.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

from anabranch.errors import ProtocolError
from anabranch.protocol.commands import ChunkInfo, ConditionalAttributeUpdate, TableEntry, TableIteratorArgs, TableKey
from anabranch.protocol.wiretypes import WireType

Reader = Callable[[memoryview, int, int], tuple[Any, int]]
Writer = Callable[[Any, list[bytes]], None]

I32 = struct.Struct(">i")
I64 = struct.Struct(">q")
U16 = struct.Struct(">H")
I32I32 = struct.Struct(">ii")
TABLE_KEY_HEAD = struct.Struct(">ii")
ATTRIBUTE_UPDATE = struct.Struct(">16sbqq")
CHUNK_INFO_HEAD = struct.Struct(">qqq")
BOOL = struct.Struct(">?")

MAX_UTF_BYTES = 0xFFFF


def need(end: int, pos: int, size: int, what: str) -> None:
    if size < 0 or pos + size > end:
        raise ProtocolError(f"truncated payload: {what} needs {size} bytes at offset {pos}, only {end - pos} left")


def read_i32(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    need(end, pos, 4, "i32")
    return I32.unpack_from(buf, pos)[0], pos + 4


def read_count(buf: memoryview, pos: int, end: int, min_item: int, what: str) -> tuple[int, int]:
    """A list's i32 element count, checked against the bytes left (each element takes >= min_item bytes)."""
    count, pos = read_i32(buf, pos, end)
    if count < 0:
        raise ProtocolError(f"negative element count {count} for {what}")
    if count * min_item > end - pos:
        raise ProtocolError(f"truncated payload: {count} {what} cannot fit in {end - pos} bytes")
    return count, pos


def decode_modified_utf8(raw: bytes) -> str:
    """Decode Java modified UTF-8 (``C0 80`` = NUL, non-BMP characters as surrogate pairs)."""
    try:
        text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"malformed string bytes: {exc}") from None
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def read_utf(buf: memoryview, pos: int, end: int) -> tuple[str, int]:
    need(end, pos, 2, "string length")
    size = U16.unpack_from(buf, pos)[0]
    pos += 2
    need(end, pos, size, "string")
    raw = buf[pos : pos + size]
    try:
        return str(raw, "utf-8"), pos + size
    except UnicodeDecodeError:
        return decode_modified_utf8(bytes(raw)), pos + size


def write_utf(value: str, out: list[bytes]) -> None:
    raw = value.encode("utf-8")
    if len(raw) > MAX_UTF_BYTES:
        raise ProtocolError(f"string of {len(raw)} UTF-8 bytes exceeds the wire limit of {MAX_UTF_BYTES}")
    out.append(U16.pack(len(raw)))
    out.append(raw)


def read_bytes(buf: memoryview, pos: int, end: int) -> tuple[bytes, int]:
    size, pos = read_i32(buf, pos, end)
    if size < 0:
        raise ProtocolError(f"negative buffer length {size}")
    need(end, pos, size, "buffer")
    return bytes(buf[pos : pos + size]), pos + size


def write_bytes(value: bytes, out: list[bytes]) -> None:
    out.append(I32.pack(len(value)))
    out.append(value)


def read_rest(buf: memoryview, pos: int, end: int) -> tuple[bytes, int]:
    return bytes(buf[pos:end]), end


def write_rest(value: bytes, out: list[bytes]) -> None:
    out.append(value)


def read_event(buf: memoryview, pos: int, end: int) -> tuple[bytes, int]:
    need(end, pos, 8, "event header")
    event_type, size = I32I32.unpack_from(buf, pos)
    if event_type != 0:
        raise ProtocolError(f"embedded event has type {event_type}, expected 0")
    pos += 8
    if size < 0:
        raise ProtocolError(f"negative event length {size}")
    need(end, pos, size, "event data")
    return bytes(buf[pos : pos + size]), pos + size


def write_event(value: bytes, out: list[bytes]) -> None:
    out.append(I32I32.pack(0, len(value)))
    out.append(value)


def read_i64_list(buf: memoryview, pos: int, end: int) -> tuple[tuple[int, ...], int]:
    count, pos = read_count(buf, pos, end, 8, "i64 values")
    values = struct.unpack_from(f">{count}q", buf, pos)
    return values, pos + 8 * count


def write_i64_list(values: tuple[int, ...], out: list[bytes]) -> None:
    out.append(I32.pack(len(values)))
    out.append(struct.pack(f">{len(values)}q", *values))


def read_utf_list(buf: memoryview, pos: int, end: int) -> tuple[tuple[str, ...], int]:
    count, pos = read_count(buf, pos, end, 2, "strings")
    items = []
    for _ in range(count):
        item, pos = read_utf(buf, pos, end)
        items.append(item)
    return tuple(items), pos


def write_utf_list(values: tuple[str, ...], out: list[bytes]) -> None:
    out.append(I32.pack(len(values)))
    for value in values:
        write_utf(value, out)


def read_table_key(buf: memoryview, pos: int, end: int) -> tuple[TableKey, int]:
    """``payloadSize i32, keyLen i32, key, version i64``; the version is always read (as Rust writes it)."""
    need(end, pos, 8, "table key header")
    _payload_size, size = TABLE_KEY_HEAD.unpack_from(buf, pos)
    pos += 8
    if size < 0:
        raise ProtocolError(f"negative table key length {size}")
    need(end, pos, size + 8, "table key")
    key = bytes(buf[pos : pos + size])
    pos += size
    return TableKey(key, I64.unpack_from(buf, pos)[0]), pos + 8


def write_table_key(key: TableKey, out: list[bytes]) -> None:
    out.append(TABLE_KEY_HEAD.pack(12 + len(key.key), len(key.key)))
    out.append(key.key)
    out.append(I64.pack(key.version))


def read_table_value(buf: memoryview, pos: int, end: int) -> tuple[bytes, int]:
    need(end, pos, 8, "table value header")
    _payload_size, size = TABLE_KEY_HEAD.unpack_from(buf, pos)
    pos += 8
    if size < 0:
        raise ProtocolError(f"negative table value length {size}")
    need(end, pos, size, "table value")
    return bytes(buf[pos : pos + size]), pos + size


def write_table_value(value: bytes, out: list[bytes]) -> None:
    out.append(TABLE_KEY_HEAD.pack(4 + len(value), len(value)))
    out.append(value)


def read_table_keys(buf: memoryview, pos: int, end: int) -> tuple[tuple[TableKey, ...], int]:
    count, pos = read_count(buf, pos, end, 16, "table keys")
    keys = []
    for _ in range(count):
        key, pos = read_table_key(buf, pos, end)
        keys.append(key)
    return tuple(keys), pos


def write_table_keys(keys: tuple[TableKey, ...], out: list[bytes]) -> None:
    out.append(I32.pack(len(keys)))
    for key in keys:
        write_table_key(key, out)


def read_table_entries(buf: memoryview, pos: int, end: int) -> tuple[tuple[TableEntry, ...], int]:
    count, pos = read_count(buf, pos, end, 24, "table entries")
    entries = []
    for _ in range(count):
        key, pos = read_table_key(buf, pos, end)
        value, pos = read_table_value(buf, pos, end)
        entries.append(TableEntry(key, value))
    return tuple(entries), pos


def write_table_entries(entries: tuple[TableEntry, ...], out: list[bytes]) -> None:
    out.append(I32.pack(len(entries)))
    for entry in entries:
        write_table_key(entry.key, out)
        write_table_value(entry.value, out)


def read_iterator_args(buf: memoryview, pos: int, end: int) -> tuple[TableIteratorArgs, int]:
    parts: list[bytes] = []
    for _ in range(4):
        if end - pos >= 4:
            part, pos = read_bytes(buf, pos, end)
        else:
            part = b""
        parts.append(part)
    return TableIteratorArgs(*parts), pos


def write_iterator_args(args: TableIteratorArgs, out: list[bytes]) -> None:
    for part in (args.continuation_token, args.prefix_filter, args.from_key, args.to_key):
        write_bytes(part, out)


def read_attribute_updates(buf: memoryview, pos: int, end: int) -> tuple[tuple[ConditionalAttributeUpdate, ...], int]:
    count, pos = read_count(buf, pos, end, ATTRIBUTE_UPDATE.size, "attribute updates")
    updates = []
    for _ in range(count):
        raw_id, update_type, new_value, old_value = ATTRIBUTE_UPDATE.unpack_from(buf, pos)
        pos += ATTRIBUTE_UPDATE.size
        updates.append(ConditionalAttributeUpdate(uuid.UUID(bytes=raw_id), update_type, new_value, old_value))
    return tuple(updates), pos


def write_attribute_updates(updates: tuple[ConditionalAttributeUpdate, ...], out: list[bytes]) -> None:
    out.append(I32.pack(len(updates)))
    for u in updates:
        out.append(ATTRIBUTE_UPDATE.pack(u.attribute_id.bytes, u.update_type, u.new_value, u.old_value))


def read_batch_merge_results(buf: memoryview, pos: int, end: int) -> tuple[tuple[tuple[str, int], ...], int]:
    count, pos = read_count(buf, pos, end, 10, "merge results")
    results = []
    for _ in range(count):
        source, pos = read_utf(buf, pos, end)
        need(end, pos, 8, "merge result offset")
        results.append((source, I64.unpack_from(buf, pos)[0]))
        pos += 8
    return tuple(results), pos


def write_batch_merge_results(results: tuple[tuple[str, int], ...], out: list[bytes]) -> None:
    out.append(I32.pack(len(results)))
    for source, offset in results:
        write_utf(source, out)
        out.append(I64.pack(offset))


def read_chunk_infos(buf: memoryview, pos: int, end: int) -> tuple[tuple[ChunkInfo, ...], int]:
    count, pos = read_count(buf, pos, end, CHUNK_INFO_HEAD.size + 3, "chunk infos")
    chunks = []
    for _ in range(count):
        need(end, pos, CHUNK_INFO_HEAD.size, "chunk info")
        in_metadata, in_storage, start = CHUNK_INFO_HEAD.unpack_from(buf, pos)
        name, pos = read_utf(buf, pos + CHUNK_INFO_HEAD.size, end)
        need(end, pos, 1, "chunk info flag")
        exists = BOOL.unpack_from(buf, pos)[0]
        chunks.append(ChunkInfo(in_metadata, in_storage, start, name, exists))
        pos += 1
    return tuple(chunks), pos


def write_chunk_infos(chunks: tuple[ChunkInfo, ...], out: list[bytes]) -> None:
    out.append(I32.pack(len(chunks)))
    for c in chunks:
        out.append(CHUNK_INFO_HEAD.pack(c.length_in_metadata, c.length_in_storage, c.start_offset))
        write_utf(c.chunk_name, out)
        out.append(BOOL.pack(c.exists_in_storage))


VARIABLE: dict[WireType, tuple[Reader, Writer]] = {
    WireType.UTF: (read_utf, write_utf),
    WireType.BYTES: (read_bytes, write_bytes),
    WireType.REST: (read_rest, write_rest),
    WireType.EVENT: (read_event, write_event),
    WireType.I64_LIST: (read_i64_list, write_i64_list),
    WireType.UTF_LIST: (read_utf_list, write_utf_list),
    WireType.TABLE_ENTRIES: (read_table_entries, write_table_entries),
    WireType.TABLE_KEYS: (read_table_keys, write_table_keys),
    WireType.ITERATOR_ARGS: (read_iterator_args, write_iterator_args),
    WireType.ATTRIBUTE_UPDATES: (read_attribute_updates, write_attribute_updates),
    WireType.BATCH_MERGE_RESULTS: (read_batch_merge_results, write_batch_merge_results),
    WireType.CHUNK_INFOS: (read_chunk_infos, write_chunk_infos),
}
"""Reader and writer of every wire type that has no fixed size."""
