"""An in-memory stand-in for one segment store and the controller calls the read side makes.

Only for the unit tests of the read-side client components; integration tests use real processes.
Segment reads long-poll at the tail until data arrives, the segment is sealed, or the wait times out.
Table versions increase with every update, as the server's log offsets do.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from dataclasses import dataclass, field

from anabranch.client.controller_client import Endpoint, Successor
from anabranch.client.errors import ControllerError
from anabranch.client.hashing import SegmentWithRange
from anabranch.client.segment_reader import SegmentRouter
from anabranch.model.names import ScopedSegment, qualified_segment_name
from anabranch.protocol import commands as wire
from anabranch.retry import RetryPolicy

TAIL_WAIT = 0.5


def events(*payloads: bytes) -> bytes:
    return b"".join(struct.pack(">ii", 0, len(p)) + p for p in payloads)


@dataclass
class FakeTable:
    entries: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    log: list[tuple[int, bytes]] = field(default_factory=list)


class FakeStore:
    """Answers wire requests like a segment store, in memory."""

    def __init__(self) -> None:
        self.data: dict[str, bytearray] = {}
        self.start: dict[str, int] = {}
        self.sealed: set[str] = set()
        self.tables: dict[str, FakeTable] = {}
        self.changed = asyncio.Event()
        self.versions = itertools.count(1)
        self.wrong_host_once: set[str] = set()
        self.requests: list[wire.Request] = []

    # --- data plane helpers -------------------------------------------------------------------
    def create(self, name: str, data: bytes = b"") -> None:
        self.data[name] = bytearray(data)
        self.start[name] = 0

    def append(self, name: str, data: bytes) -> None:
        assert name not in self.sealed
        self.data[name] += data
        self._notify()

    def seal(self, name: str) -> None:
        self.sealed.add(name)
        self._notify()

    def truncate(self, name: str, offset: int) -> None:
        self.start[name] = offset

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    # --- the connection -------------------------------------------------------------------------
    async def request(self, cmd: wire.Request, *, timeout: float = 30.0) -> wire.Reply:
        self.requests.append(cmd)
        segment = getattr(cmd, "segment", getattr(cmd, "segment_name", ""))
        rid = getattr(cmd, "request_id", -1)
        if segment in self.wrong_host_once:
            self.wrong_host_once.discard(segment)
            return wire.WrongHost(rid, segment)
        handler = getattr(self, "_" + type(cmd).__name__)
        return await handler(cmd)  # type: ignore[no-any-return]

    async def _ReadSegment(self, cmd: wire.ReadSegment) -> wire.Reply:
        name = cmd.segment
        if name not in self.data:
            return wire.NoSuchSegment(cmd.request_id, name, "", cmd.offset)
        if cmd.offset < self.start[name]:
            return wire.SegmentIsTruncated(cmd.request_id, name, self.start[name], "", cmd.offset)
        waited = False
        while True:
            data = self.data[name]
            if cmd.offset < len(data):
                chunk = bytes(data[cmd.offset : cmd.offset + cmd.suggested_length])
                end = name in self.sealed and cmd.offset + len(chunk) == len(data)
                return wire.SegmentRead(name, cmd.offset, True, end, chunk, cmd.request_id)
            if name in self.sealed:
                return wire.SegmentRead(name, cmd.offset, True, True, b"", cmd.request_id)
            if waited:
                return wire.SegmentRead(name, cmd.offset, True, False, b"", cmd.request_id)
            try:
                await asyncio.wait_for(self.changed.wait(), TAIL_WAIT)
            except TimeoutError:
                waited = True

    async def _GetStreamSegmentInfo(self, cmd: wire.GetStreamSegmentInfo) -> wire.Reply:
        name = cmd.segment_name
        if name not in self.data:
            return wire.NoSuchSegment(cmd.request_id, name)
        return wire.StreamSegmentInfo(cmd.request_id, name, True, name in self.sealed, False, 0,
                                      len(self.data[name]), self.start[name])

    async def _CreateTableSegment(self, cmd: wire.CreateTableSegment) -> wire.Reply:
        if cmd.segment in self.tables:
            return wire.SegmentAlreadyExists(cmd.request_id, cmd.segment)
        self.tables[cmd.segment] = FakeTable()
        return wire.SegmentCreated(cmd.request_id, cmd.segment)

    async def _DeleteTableSegment(self, cmd: wire.DeleteTableSegment) -> wire.Reply:
        if self.tables.pop(cmd.segment, None) is None:
            return wire.NoSuchSegment(cmd.request_id, cmd.segment)
        return wire.SegmentDeleted(cmd.request_id, cmd.segment)

    def _check(self, table: FakeTable, keys: list[wire.TableKey], rid: int, name: str) -> wire.Reply | None:
        if all(k.version == wire.NO_VERSION for k in keys):
            return None
        for k in keys:
            current = table.entries.get(k.key)
            if k.version == wire.NOT_EXISTS and current is not None:
                return wire.TableKeyBadVersion(rid, name)
            if k.version >= 0 and current is None:
                return wire.TableKeyDoesNotExist(rid, name)
            if k.version >= 0 and current is not None and current[1] != k.version:
                return wire.TableKeyBadVersion(rid, name)
        return None

    async def _UpdateTableEntries(self, cmd: wire.UpdateTableEntries) -> wire.Reply:
        table = self.tables.get(cmd.segment)
        if table is None:
            return wire.NoSuchSegment(cmd.request_id, cmd.segment)
        failed = self._check(table, [e.key for e in cmd.entries], cmd.request_id, cmd.segment)
        if failed is not None:
            return failed
        versions = []
        for e in cmd.entries:
            version = next(self.versions)
            table.entries[e.key.key] = (e.value, version)
            table.log.append((version, e.key.key))
            versions.append(version)
        return wire.TableEntriesUpdated(cmd.request_id, tuple(versions))

    async def _RemoveTableKeys(self, cmd: wire.RemoveTableKeys) -> wire.Reply:
        table = self.tables.get(cmd.segment)
        if table is None:
            return wire.NoSuchSegment(cmd.request_id, cmd.segment)
        failed = self._check(table, list(cmd.keys), cmd.request_id, cmd.segment)
        if failed is not None:
            return failed
        for k in cmd.keys:
            table.entries.pop(k.key, None)
        next(self.versions)
        return wire.TableKeysRemoved(cmd.request_id, cmd.segment)

    async def _ReadTable(self, cmd: wire.ReadTable) -> wire.Reply:
        table = self.tables.get(cmd.segment)
        if table is None:
            return wire.NoSuchSegment(cmd.request_id, cmd.segment)
        out = []
        for k in cmd.keys:
            value, version = table.entries.get(k.key, (b"", -1))
            out.append(wire.TableEntry(wire.TableKey(k.key, version), value))
        return wire.TableRead(cmd.request_id, cmd.segment, tuple(out))

    def _page(self, cmd: wire.ReadTableKeys | wire.ReadTableEntries, count: int) -> tuple[list[bytes], bytes]:
        keys = sorted(self.tables[cmd.segment].entries)
        token = cmd.args.continuation_token
        if token:
            keys = [k for k in keys if k > token]
        page = keys[:count]
        return page, (page[-1] if page else token)

    async def _ReadTableKeys(self, cmd: wire.ReadTableKeys) -> wire.Reply:
        page, token = self._page(cmd, cmd.suggested_key_count)
        entries = self.tables[cmd.segment].entries
        return wire.TableKeysRead(cmd.request_id, cmd.segment, tuple(wire.TableKey(k, entries[k][1]) for k in page),
                                  token)

    async def _ReadTableEntries(self, cmd: wire.ReadTableEntries) -> wire.Reply:
        page, token = self._page(cmd, cmd.suggested_entry_count)
        entries = self.tables[cmd.segment].entries
        return wire.TableEntriesRead(
            cmd.request_id, cmd.segment,
            tuple(wire.TableEntry(wire.TableKey(k, entries[k][1]), entries[k][0]) for k in page), token,
        )

    async def _ReadTableEntriesDelta(self, cmd: wire.ReadTableEntriesDelta) -> wire.Reply:
        table = self.tables[cmd.segment]
        newer = [(v, k) for v, k in table.log if v >= cmd.from_position and table.entries.get(k, (b"", -1))[1] == v]
        page = newer[: cmd.suggested_entry_count]
        last = page[-1][0] + 1 if page else cmd.from_position
        entries = tuple(wire.TableEntry(wire.TableKey(k, v), table.entries[k][0]) for v, k in page)
        return wire.TableEntriesDeltaRead(cmd.request_id, cmd.segment, entries, False, len(page) == len(newer), last)


class FakePool:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def get(self, host: str, port: int) -> FakeStore:
        return self.store


async def resolve(segment: str) -> tuple[str, int]:
    return "127.0.0.1", 1


def router(store: FakeStore) -> SegmentRouter:
    return SegmentRouter(resolve, FakePool(store),
                         policy=RetryPolicy(initial_delay=0.001, max_delay=0.01, max_attempts=8))


class FakeController:
    """getSegments (head), getCurrentSegments, getSegmentsImmediatelyFollowing over a scripted history."""

    def __init__(self, store: FakeStore, scope: str, stream: str, segments: int) -> None:
        self.store = store
        self.scope, self.stream = scope, stream
        self.ranges: dict[int, tuple[float, float]] = {}
        self.current: list[int] = []
        self.successors: dict[int, list[Successor]] = {}
        self.epoch = 0
        for i in range(segments):
            self.ranges[i] = (i / segments, (i + 1) / segments)
            self.current.append(i)
            store.create(self.name(i))

    def name(self, segment_id: int) -> str:
        return qualified_segment_name(self.scope, self.stream, segment_id)

    def segment(self, segment_id: int) -> ScopedSegment:
        return ScopedSegment(self.scope, self.stream, segment_id)

    def scale(self, sealed: list[int], new_ranges: list[tuple[float, float]]) -> list[int]:
        """Seals ``sealed`` and creates successors in a new epoch."""
        self.epoch += 1
        number = max(s & 0xFFFFFFFF for s in self.ranges) + 1
        created = []
        for i, rng in enumerate(new_ranges):
            sid = (self.epoch << 32) | (number + i)
            self.ranges[sid] = rng
            created.append(sid)
            self.store.create(self.name(sid))
        for old in sealed:
            lo, hi = self.ranges[old]
            follow = [s for s in created if self.ranges[s][0] < hi and self.ranges[s][1] > lo]
            self.successors[old] = [
                Successor(SegmentWithRange(self.scope, self.stream, s, *self.ranges[s]),
                          tuple(p for p in sealed if self.ranges[p][0] < self.ranges[s][1]
                                and self.ranges[p][1] > self.ranges[s][0]))
                for s in follow
            ]
            self.store.seal(self.name(old))
        self.current = [s for s in self.current if s not in sealed] + created
        return created

    async def get_head_segments(self, scope: str, stream: str) -> dict[int, int]:
        return {s: 0 for s in self.ranges if s >> 32 == 0}

    async def get_current_segments(self, scope: str, stream: str) -> list[SegmentWithRange]:
        return [SegmentWithRange(scope, stream, s, *self.ranges[s]) for s in self.current]

    async def get_successors(self, scope: str, stream: str, segment_id: int) -> list[Successor]:
        return self.successors.get(segment_id, [])

    async def get_uri(self, scope: str, stream: str, segment_id: int) -> Endpoint:
        return Endpoint("127.0.0.1", 1)

    async def create_reader_group(self, config: object) -> object:
        raise ControllerError("createReaderGroup is not implemented here")

    async def get_reader_group_config(self, scope: str, group: str) -> object:
        raise ControllerError("getReaderGroupConfig is not implemented here")
