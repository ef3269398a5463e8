"""A segment store running some of the containers: requests for the others are answered WrongHost (every command
that names a segment, appends included), and table indexes are rebuilt when their container comes back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from anabranch.protocol.commands import (
    NO_VERSION,
    CreateSegment,
    CreateTableSegment,
    GetStreamSegmentInfo,
    MergeSegments,
    NoSuchSegment,
    ReadSegment,
    ReadTable,
    SegmentCreated,
    SetupAppend,
    StreamSegmentInfo,
    TableEntry,
    TableKey,
    TableRead,
    UpdateTableEntries,
    WrongHost,
)
from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.errors import ContainerNotOwnedError
from anabranch.segmentstore.service import SegmentStoreService
from anabranch.segmentstore.store import SegmentStore, container_id_for
from anabranch.segmentstore.tables import TableStore
from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.memory_log import InMemoryDurableDataLog
from tests.unit.segmentstore_handler.handler_harness import Client

COUNT = 4


def name_in(container_id: int, prefix: str = "scope/stream") -> str:
    """A segment name whose container is ``container_id``."""
    for i in range(10_000):
        name = f"{prefix}/{i}.#epoch.0"
        if container_id_for(name, COUNT) == container_id:
            return name
    raise AssertionError("no name found")


class Containers:
    """Durable state of each container (a log and LTS), from which a new instance can be started, as a new owner
    would."""

    def __init__(self) -> None:
        self.chunks = InMemoryChunkStorage()
        self.logs = {i: InMemoryDurableDataLog() for i in range(COUNT)}

    async def start(self, container_id: int) -> SegmentContainer:
        storage = ChunkedSegmentStorage(self.chunks, namespace=f"container-{container_id}")
        await storage.open()
        container = SegmentContainer(container_id, self.logs[container_id], storage, cache_size=8 * 1024 * 1024)
        await container.start()
        return container


@pytest.fixture
async def env() -> Containers:
    return Containers()


async def test_requests_for_containers_elsewhere_get_wrong_host(env: Containers) -> None:
    store = SegmentStore([await env.start(0)], container_count=COUNT)
    tables = TableStore(store)
    client = Client(store, tables)
    local, remote = name_in(0), name_in(1)
    try:
        assert isinstance(await client.call(CreateSegment(1, local)), SegmentCreated)
        assert await client.call(CreateSegment(2, remote)) == WrongHost(2, remote, "", "")
        assert await client.call(GetStreamSegmentInfo(3, remote, "")) == WrongHost(3, remote, "", "")
        assert await client.call(ReadSegment(remote, 0, 100, "", 4)) == WrongHost(4, remote, "", "")
        writer = uuid.uuid4()
        assert await client.call(SetupAppend(5, writer, remote, "")) == WrongHost(5, remote, "", "")
        table = name_in(2, "_system/_tables")
        assert await client.call(CreateTableSegment(6, table)) == WrongHost(6, table, "", "")
        entries = (TableEntry(TableKey(b"k"), b"v"),)
        assert await client.call(UpdateTableEntries(7, table, "", entries)) == WrongHost(7, table, "", "")
        # a merge whose source lives in a container that runs elsewhere is refused, not half done
        assert await client.call(MergeSegments(8, local, remote, "")) == WrongHost(8, remote, "", "")
        assert isinstance(await client.call(GetStreamSegmentInfo(9, local, "")), StreamSegmentInfo)
        assert not client.closed
        # the container stops here: the segment it holds now gets WrongHost, not NoSuchSegment
        container = store.remove_container(0)
        assert container is not None
        await container.close()
        assert await client.call(GetStreamSegmentInfo(10, local, "")) == WrongHost(10, local, "", "")
        store.add_container(await env.start(0))
        assert isinstance(await client.call(GetStreamSegmentInfo(11, local, "")), StreamSegmentInfo)
        assert isinstance(await client.call(GetStreamSegmentInfo(12, name_in(0, "other/x"), "")), NoSuchSegment)
    finally:
        await client.handler.aclose()
        await store.close()


async def test_appends_to_a_container_that_left_get_wrong_host(env: Containers) -> None:
    store = SegmentStore([await env.start(0)], container_count=COUNT)
    client = Client(store, TableStore(store))
    segment = name_in(0)
    writer = uuid.uuid4()
    try:
        await client.call(CreateSegment(1, segment))
        await client.call(SetupAppend(2, writer, segment, ""))
        container = store.remove_container(0)
        assert container is not None
        await container.close()
        client.append(writer, b"\0\0\0\0\0\0\0\1x", 1, 1, 3)
        assert await client.wait_reply(3) == WrongHost(3, segment, "", "")
    finally:
        await client.handler.aclose()
        await store.close()


async def test_store_rejects_bad_container_sets(env: Containers) -> None:
    container = await env.start(0)
    store = SegmentStore([container], container_count=COUNT)
    try:
        with pytest.raises(ContainerNotOwnedError) as caught:
            await store.get_info(name_in(3))
        assert caught.value.retriable and caught.value.container_id == 3
        with pytest.raises(Exception, match="already runs"):
            store.add_container(container)
        assert store.container_ids() == [0]
        assert store.statistics()["containers"] == 1
    finally:
        await store.close()


async def test_table_index_is_rebuilt_when_its_container_comes_back(tmp_path: Path, env: Containers) -> None:
    """Another segment store changes a table while its container is away; back here, reads see that change."""
    table = name_in(1, "_system/_tables")
    service = SegmentStoreService(tmp_path, port=0, container_count=COUNT)
    store = SegmentStore([await env.start(1)], container_count=COUNT)
    service.store = store
    tables = service.tables = TableStore(store)
    store.add_listener(service._container_changed)
    try:
        await tables.create_table(table)
        await tables.update(table, [(b"k", b"old", NO_VERSION)], -1)
        assert [e[1] for e in await tables.get(table, [b"k"]) if e] == [b"old"]
        gone = store.remove_container(1)
        assert gone is not None
        await gone.close()
        # the container runs elsewhere meanwhile (a new instance over the same durable state)
        other_store = SegmentStore([await env.start(1)], container_count=COUNT)
        await TableStore(other_store).update(table, [(b"k", b"new", NO_VERSION)], -1)
        await other_store.close()
        store.add_container(await env.start(1))
        assert [e[1] for e in await tables.get(table, [b"k"]) if e] == [b"new"]
        client = Client(store, tables)
        reply = await client.call(ReadTable(7, table, "", (TableKey(b"k"),)))
        assert isinstance(reply, TableRead) and reply.entries[0].value == b"new"
        await client.handler.aclose()
    finally:
        await store.close()
