"""The typed blocking facade against an embedded standalone: writers, reader groups, readers, stream info, lag (the
pytest plugin's ``anabranch_blocking_standalone``: a fresh in-memory server per test)."""

from __future__ import annotations

import concurrent.futures
import uuid

from anabranch.client import (
    BlockingEventStreamReader,
    BlockingEventStreamWriter,
    BlockingReaderGroup,
    Lag,
    ReaderGroupConfig,
    StringSerializer,
    connect,
)
from anabranch.embedded import BlockingStandalone


def test_typed_blocking_facade(anabranch_blocking_standalone: BlockingStandalone) -> None:
    scope = f"bt{uuid.uuid4().hex[:8]}"
    with connect(anabranch_blocking_standalone.controller_uri) as manager:
        assert manager.create_scope(scope)
        assert manager.create_stream(scope, "s")
        assert manager.list_streams(scope) == ["s"]
        writer = manager.create_writer(scope, "s", StringSerializer())
        assert isinstance(writer, BlockingEventStreamWriter)
        acks = [writer.write_event(f"e{i}", "k") for i in range(4)]
        writer.flush()
        assert all(isinstance(a, concurrent.futures.Future) and a.result(5) is None for a in acks)
        info = manager.get_stream_info(scope, "s")
        assert sum(info.tail.positions.values()) == 4 * 10 and not info.sealed
        group = manager.create_reader_group(scope, "g", ReaderGroupConfig.for_streams(scope, "s"))
        assert isinstance(group, BlockingReaderGroup)
        assert group.lag() == Lag(4, 40)
        reader = group.create_reader("r1", StringSerializer())
        assert isinstance(reader, BlockingEventStreamReader)
        events = []
        while len(events) < 4:
            read = reader.read_next_event(5.0)
            if read.event is not None:
                events.append(read.event)
                assert read.pointer is not None and reader.fetch_event(read.pointer) == read.event
        assert events == ["e0", "e1", "e2", "e3"]
        assert reader.lag() == Lag(0, 0)
        reader.close()
        result = manager.scale_stream(scope, "s", [0], [(0.0, 0.5), (0.5, 1.0)])
        assert len(result.new_segments) == 2
