"""``StreamManager``: the entry point of the client — scopes, streams, and factories for everything else.

Owns one ``ClientContext`` (settings, controller client, connection pool) shared by every writer,
reader, reader group and table it creates; closing the manager closes them all. Scopes and streams
are managed through the controller; reader groups and key-value tables are delegated to their own
modules. Listing hides internal streams (names starting with ``_``) unless asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from anabranch.client.batch import BatchClient
from anabranch.client.byte_stream import ByteStreamReader, ByteStreamWriter
from anabranch.client.config import ClientConfig, StreamConfiguration
from anabranch.client.connection import ConnectionPool
from anabranch.client.controller_client import ControllerClient, KeyValueTableConfiguration, ScaleResult
from anabranch.client.event_pointer import EventPointer, fetch_event
from anabranch.client.event_writer import EventStreamWriter
from anabranch.client.hashing import SegmentWithRange
from anabranch.client.kv_table import KeyValueTable
from anabranch.client.reader_group import ReaderGroup, ReaderGroupConfig, ReaderGroupManager, tail_positions
from anabranch.client.segment_reader import SegmentRouter, controller_resolver
from anabranch.client.segment_writer import ClientContext
from anabranch.client.serializers import Serializer
from anabranch.client.state_synchronizer import RevisionedTableClient, StateSynchronizer, synchronizer_segment
from anabranch.client.table_client import TableSegmentClient
from anabranch.client.transactional_writer import TransactionalEventStreamWriter
from anabranch.model.names import validate_name
from anabranch.model.stream_cut import StreamCut

T = TypeVar("T")


class StreamManager:
    """Manage scopes and streams and create writers, readers, reader groups and key-value tables.

    ``async with StreamManager(ClientConfig("tcp://127.0.0.1:9090")) as manager: ...``
    """

    def __init__(self, config: ClientConfig | str | None = None) -> None:
        if isinstance(config, str):
            config = ClientConfig(config)
        self.config = config or ClientConfig()
        self.controller = ControllerClient(self.config)
        self.pool = ConnectionPool(connect_timeout=self.config.connect_timeout,
                                   ssl_context=self.config.ssl_context())
        self.context = ClientContext(self.config, self.controller, self.pool)
        self.router = SegmentRouter(controller_resolver(self.controller), self.pool,
                                    policy=self.config.retry_policy, tokens=self.context.tokens)
        self._closeables: list[Any] = []

    async def __aenter__(self) -> StreamManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every writer created here (flushing it), then the connections and the controller channel."""
        closeables, self._closeables = self._closeables, []
        try:
            for item in closeables:
                await item.close()
        finally:
            await self.pool.close()
            await self.controller.close()

    # ---- scopes ----

    async def create_scope(self, scope: str) -> bool:
        """True if created, False if it already existed."""
        return await self.controller.create_scope(validate_name("scope", scope, allow_internal=False))

    async def delete_scope(self, scope: str) -> bool:
        """True if deleted, False if it did not exist; ScopeNotEmptyError while it holds streams."""
        return await self.controller.delete_scope(scope)

    async def scope_exists(self, scope: str) -> bool:
        return await self.controller.scope_exists(scope)

    async def list_scopes(self, *, include_internal: bool = False) -> AsyncIterator[str]:
        async for scope in self.controller.list_scopes():
            if include_internal or not scope.startswith("_"):
                yield scope

    # ---- streams ----

    async def create_stream(self, scope: str, stream: str, config: StreamConfiguration | None = None) -> bool:
        """True if created, False if a stream of that name existed."""
        validate_name("stream", stream, allow_internal=False)
        return await self.controller.create_stream(scope, stream, config or StreamConfiguration())

    async def update_stream(self, scope: str, stream: str, config: StreamConfiguration) -> None:
        await self.controller.update_stream(scope, stream, config)

    async def get_stream_configuration(self, scope: str, stream: str) -> StreamConfiguration:
        return await self.controller.get_stream_configuration(scope, stream)

    async def stream_exists(self, scope: str, stream: str) -> bool:
        return await self.controller.stream_exists(scope, stream)

    async def seal_stream(self, scope: str, stream: str) -> None:
        """No more writes; readers see the end of the stream after its last event."""
        await self.controller.seal_stream(scope, stream)

    async def truncate_stream(self, cut: StreamCut) -> None:
        """Drop all data before ``cut`` (e.g. one from a reader group's ``get_stream_cuts()``)."""
        await self.controller.truncate_stream(cut)

    async def delete_stream(self, scope: str, stream: str) -> bool:
        """True if deleted, False if it did not exist. The stream must be sealed first."""
        return await self.controller.delete_stream(scope, stream)

    async def list_streams(self, scope: str, *, tag: str | None = None,
                           include_internal: bool = False) -> AsyncIterator[str]:
        """The streams of a scope (page by page from the controller), optionally only those with ``tag``."""
        names = self.controller.list_streams(scope) if tag is None else self.controller.list_streams_for_tag(scope, tag)
        async for name in names:
            if include_internal or not name.startswith("_"):
                yield name

    async def get_current_segments(self, scope: str, stream: str) -> list[SegmentWithRange]:
        return await self.controller.get_current_segments(scope, stream)

    async def get_head_stream_cut(self, scope: str, stream: str) -> StreamCut:
        return StreamCut(scope, stream, await self.controller.get_head_segments(scope, stream))

    async def get_tail_stream_cut(self, scope: str, stream: str) -> StreamCut:
        """The current segments at their write offsets (the unbounded cut, meaning "the end", once sealed)."""
        return StreamCut(scope, stream, await tail_positions(self.controller, self.router, scope, stream))

    async def get_stream_info(self, scope: str, stream: str) -> StreamInfo:
        """Head and tail stream cuts (as Pravega's ``getStreamInfo``) and whether the stream is sealed."""
        head = await self.get_head_stream_cut(scope, stream)
        tail = await self.get_tail_stream_cut(scope, stream)
        return StreamInfo(scope, stream, head, tail, sealed=tail.is_unbounded)

    async def scale_stream(self, scope: str, stream: str, sealed_segments: Iterable[int],
                           new_ranges: Iterable[tuple[float, float]], *, timeout: float = 60.0) -> ScaleResult:
        """Manual scaling: seal ``sealed_segments`` (ids of current segments) and replace them with segments
        covering ``new_ranges`` (key ranges that together cover exactly the sealed ones); waits up to ``timeout``
        seconds for the scale to complete. ``ScaleFailedError`` if the controller refuses it."""
        return await self.controller.scale_and_wait(scope, stream, list(sealed_segments), list(new_ranges), timeout)

    # ---- writers ----

    def _track(self, item: T) -> T:
        self._closeables.append(item)
        return item

    @overload
    def create_writer(self, scope: str, stream: str) -> EventStreamWriter[Any]: ...

    @overload
    def create_writer(self, scope: str, stream: str, serializer: Serializer[T]) -> EventStreamWriter[T]: ...

    def create_writer(self, scope: str, stream: str,
                      serializer: Serializer[Any] | None = None) -> EventStreamWriter[Any]:
        """A writer; without a serializer it takes ``bytes`` as they are and ``str`` as UTF-8."""
        return self._track(EventStreamWriter(self.context, scope, stream, serializer))

    @overload
    def create_transactional_writer(self, scope: str, stream: str, *,
                                    writer_id: int | None = None) -> TransactionalEventStreamWriter[Any]: ...

    @overload
    def create_transactional_writer(self, scope: str, stream: str, serializer: Serializer[T],
                                    writer_id: int | None = None) -> TransactionalEventStreamWriter[T]: ...

    def create_transactional_writer(self, scope: str, stream: str, serializer: Serializer[Any] | None = None,
                                    writer_id: int | None = None) -> TransactionalEventStreamWriter[Any]:
        return self._track(TransactionalEventStreamWriter(self.context, scope, stream, serializer, writer_id))

    async def create_byte_stream_writer(self, scope: str, stream: str) -> ByteStreamWriter:
        return self._track(await ByteStreamWriter.open(self.context, scope, stream))

    async def create_byte_stream_reader(self, scope: str, stream: str) -> ByteStreamReader:
        return await ByteStreamReader.open(self.context, scope, stream)

    # ---- reader groups and key-value tables (see reader_group.py and kv_table.py) ----

    def _reader_groups(self) -> ReaderGroupManager:
        return ReaderGroupManager(self.controller, self.router)

    async def create_reader_group(self, scope: str, group: str, config: ReaderGroupConfig) -> ReaderGroup:
        """Create a reader group (``ReaderGroupConfig.for_streams(scope, "s1", ...)``) and return it."""
        return await self._reader_groups().create_reader_group(scope, group, config)

    async def get_reader_group(self, scope: str, group: str) -> ReaderGroup:
        return await self._reader_groups().get_reader_group(scope, group)

    async def delete_reader_group(self, scope: str, group: str) -> bool:
        return bool(await self._reader_groups().delete_reader_group(scope, group))

    async def create_key_value_table(self, scope: str, name: str,
                                     config: KeyValueTableConfiguration | None = None) -> bool:
        """True if created, False if it existed."""
        validate_name("key-value table", name, allow_internal=False)
        return await self.controller.create_key_value_table(scope, name, config or KeyValueTableConfiguration())

    async def get_key_value_table(self, scope: str, name: str) -> KeyValueTable:
        return await KeyValueTable.open(self.controller, self.router, scope, name)

    async def delete_key_value_table(self, scope: str, name: str) -> bool:
        return await self.controller.delete_key_value_table(scope, name)

    def list_key_value_tables(self, scope: str) -> AsyncIterator[str]:
        return self.controller.list_key_value_tables(scope)

    # ---- batch reads and event pointers ----

    def batch_client(self) -> BatchClient:
        """Lists the segment ranges between two stream cuts and reads each on its own (no reader group)."""
        return BatchClient(self.controller, self.router)

    @overload
    async def read_event(self, pointer: EventPointer) -> bytes: ...

    @overload
    async def read_event(self, pointer: EventPointer, serializer: Serializer[T]) -> T: ...

    async def read_event(self, pointer: EventPointer, serializer: Serializer[Any] | None = None) -> Any:
        """The one event at ``pointer`` (``EventRead.pointer``, ``BatchEvent.pointer`` or
        ``EventPointer.parse(text)``); raw bytes without a serializer."""
        data = await fetch_event(self.router, pointer)
        return data if serializer is None else serializer.deserialize(data)

    def create_state_synchronizer(self, scope: str, name: str, serializer: Serializer[T]) -> StateSynchronizer[T]:
        """A ``StateSynchronizer`` for shared state ``name`` (call ``initialize(initial)`` on it first)."""
        validate_name("state synchronizer", name, allow_internal=False)
        table = TableSegmentClient(self.router, synchronizer_segment(scope, name))
        return StateSynchronizer(RevisionedTableClient(table), serializer)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What ``StreamManager.get_stream_info`` tells: the readable range of a stream and whether it is sealed."""

    scope: str
    stream: str
    head: StreamCut
    tail: StreamCut
    sealed: bool
