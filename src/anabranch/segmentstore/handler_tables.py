"""Table-segment requests (spec §2.6, §5.2): each turns one request into one TableStore call and one reply.

Errors propagate to the caller, which maps them with :func:`handler_errors.error_reply`.
"""

from __future__ import annotations

from anabranch.protocol.commands import (
    NOT_EXISTS,
    CreateTableSegment,
    DeleteTableSegment,
    GetTableSegmentInfo,
    ReadTable,
    ReadTableEntries,
    ReadTableEntriesDelta,
    ReadTableKeys,
    RemoveTableKeys,
    Reply,
    SegmentCreated,
    SegmentDeleted,
    TableEntriesDeltaRead,
    TableEntriesRead,
    TableEntriesUpdated,
    TableEntry,
    TableIteratorArgs,
    TableKey,
    TableKeysRead,
    TableKeysRemoved,
    TableRead,
    TableSegmentInfo,
    UpdateTableEntries,
)
from anabranch.segmentstore.tables import TableArgumentError, TableStore

TableRequest = (
    CreateTableSegment
    | DeleteTableSegment
    | UpdateTableEntries
    | RemoveTableKeys
    | ReadTable
    | ReadTableKeys
    | ReadTableEntries
    | ReadTableEntriesDelta
    | GetTableSegmentInfo
)


def _check_range(args: TableIteratorArgs) -> None:
    if args.from_key or args.to_key or args.prefix_filter:
        raise TableArgumentError("key ranges and prefix filters need fixed-key-length tables, which are not supported")


async def handle_table_request(tables: TableStore, request: TableRequest) -> Reply:
    """Execute one table request and build its reply."""
    if isinstance(request, CreateTableSegment):
        await tables.create_table(request.segment)
        return SegmentCreated(request.request_id, request.segment)
    if isinstance(request, DeleteTableSegment):
        await tables.delete_table(request.segment, request.must_be_empty)
        return SegmentDeleted(request.request_id, request.segment)
    if isinstance(request, UpdateTableEntries):
        versions = await tables.update(
            request.segment,
            [(entry.key.key, entry.value, entry.key.version) for entry in request.entries],
            request.table_segment_offset,
        )
        return TableEntriesUpdated(request.request_id, tuple(versions))
    if isinstance(request, RemoveTableKeys):
        await tables.remove(
            request.segment, [(key.key, key.version) for key in request.keys], request.table_segment_offset
        )
        return TableKeysRemoved(request.request_id, request.segment)
    if isinstance(request, ReadTable):
        found = await tables.get(request.segment, [key.key for key in request.keys])
        entries = tuple(
            TableEntry(TableKey(key.key, NOT_EXISTS), b"")
            if hit is None
            else TableEntry(TableKey(key.key, hit[0]), hit[1])
            for key, hit in zip(request.keys, found, strict=True)
        )
        return TableRead(request.request_id, request.segment, entries)
    if isinstance(request, ReadTableKeys):
        _check_range(request.args)
        keys, token = await tables.iterate_keys(
            request.segment, request.args.continuation_token, request.suggested_key_count
        )
        return TableKeysRead(
            request.request_id, request.segment, tuple(TableKey(key, version) for key, version in keys), token
        )
    if isinstance(request, ReadTableEntries):
        _check_range(request.args)
        page, token = await tables.iterate_entries(
            request.segment, request.args.continuation_token, request.suggested_entry_count
        )
        return TableEntriesRead(
            request.request_id,
            request.segment,
            tuple(TableEntry(TableKey(key, version), value) for key, version, value in page),
            token,
        )
    if isinstance(request, ReadTableEntriesDelta):
        delta = await tables.read_delta(request.segment, request.from_position, request.suggested_entry_count)
        return TableEntriesDeltaRead(
            request.request_id,
            request.segment,
            tuple(TableEntry(TableKey(key, version), value) for key, version, value in delta.entries),
            delta.should_clear,
            delta.reached_end,
            delta.last_position,
        )
    info = await tables.info(request.segment_name)
    return TableSegmentInfo(
        request.request_id, request.segment_name, info.start_offset, info.length, info.entry_count, 0
    )
