"""A seeded wire-protocol fuzzer for a running segment store, with the checks that must hold after every batch.

``FrameFactory`` makes frames of every request type: well-formed commands whose fields take values at the edges
of their wire types (i8/i32/i64 extremes, empty and over-long names, oversized and empty keys, unknown enum
values), valid append sequences (SetupAppend then AppendBlockEnd), and mutations of encoded frames (flipped
bits, cut payloads, wrong lengths, other type codes, trailing garbage). ``WireFuzzer`` sends them over many
short connections while draining replies, then ``check`` asserts: the reference data written before the fuzz is
intact, a fresh connection is answered, every container still takes a write (no container failed), and the
server's resident memory stays under a bound. ``FuzzFigures`` counts what happened. Used by
``tests/integration/robustness/test_wire_fuzz.py`` (bounded) and ``scripts/fuzz_wire.py`` (long runs).
The fuzz only names segments under ``fz/`` (and a few system names); the reference data lives under ``ref/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anabranch.client.connection import RawConnection, next_request_id
from anabranch.errors import ProtocolError
from anabranch.protocol.codec import COMMANDS, encode
from anabranch.protocol.commands import (
    NO_VERSION,
    AppendBlock,
    AppendBlockEnd,
    AppendSetup,
    ConditionalAppend,
    ConditionalAttributeUpdate,
    ConditionalBlockEnd,
    CreateSegment,
    CreateTableSegment,
    DataAppended,
    ErrorMessage,
    GetStreamSegmentInfo,
    Hello,
    ReadSegment,
    ReadTable,
    Reply,
    Request,
    SegmentAlreadyExists,
    SegmentCreated,
    SegmentRead,
    SetupAppend,
    StreamSegmentInfo,
    TableEntriesUpdated,
    TableEntry,
    TableIteratorArgs,
    TableKey,
    TableRead,
    UpdateTableEntries,
)
from anabranch.protocol.framing import HEADER, FrameDecoder
from anabranch.protocol.wiretypes import Opt, WireType
from anabranch.segmentstore.store import container_id_for

REF_SEGMENT = "ref/stream/0.#epoch.0"
REF_TABLE = "ref/reference_kvtable/0.#epoch.0"
_REQUEST_TYPES = sorted(code for code, cls in COMMANDS.items() if cls.IS_REQUEST and code != Hello.TYPE)
_APPEND_TYPES = (AppendBlock.TYPE, AppendBlockEnd.TYPE, ConditionalAppend.TYPE, ConditionalBlockEnd.TYPE)
_PLAIN_TYPES = [code for code in _REQUEST_TYPES if code not in _APPEND_TYPES]
"""Requests that are well-formed on their own (append frames need a SetupAppend first)."""
_ALL_TYPES = [*sorted(COMMANDS), 0, 6, 13, 72, 73, 127, -128, 0x7FFFFFFF]
_INT_EDGES = {
    WireType.I8: (-128, -1, 0, 1, 2, 3, 127),
    WireType.I32: (-(2**31), -1, 0, 1, 7, 8, 4096, 2 * 1024 * 1024, 2**31 - 1),
    WireType.I64: (-(2**63), -1, 0, 1, 8, 4096, 2**31, 2**32, 2**62, 2**63 - 1),
}
_INT_RANGE = {WireType.I8: 7, WireType.I32: 31, WireType.I64: 63}
_I32I32 = struct.Struct(">ii")
_INTERNAL_ERRORS = ("ERROR anabranch.segmentstore.handler", "Task exception was never retrieved")
"""Log lines of requests that failed unexpectedly (``handler`` also matches ``handler_appends``)."""


class FuzzFailure(AssertionError):
    """A check after a fuzz batch failed: the server lost data, stopped answering, or grew too large."""


@dataclass
class FuzzFigures:
    frames_sent: int = 0
    mutated_frames: int = 0
    replies: int = 0
    error_replies: int = 0
    connections: int = 0
    connections_closed_by_server: int = 0
    """Connections the server closed before all their frames were sent (bad framing or a protocol violation)."""
    batches: int = 0
    checks: int = 0
    container_failures: int = 0
    internal_errors: int = 0
    """Requests that failed with an unexpected exception (the server logged a traceback)."""
    hangs: int = 0
    peak_rss_mib: float = 0.0
    start_rss_mib: float = 0.0
    seconds: float = 0.0
    replies_by_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resident_mib(pid: int) -> float:
    """The resident set size of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise FuzzFailure(f"process {pid} has no VmRSS (did it exit?)")


class FrameFactory:
    """Frames to send, from one seeded random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.writers = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(4)]
        self.names = [f"fz/s{i}/0.#epoch.0" for i in range(6)] + [
            f"fz/t{i}_kvtable/0.#epoch.0" for i in range(3)
        ] + [
            "", "fz", "fz/s0/0.#epoch.0#transient.0000000000000001", "_system/_tables/fuzz", "fz/é/ü/0.#epoch.0",
            "fz/" + "x" * 300, "fz/" + "y" * 8189, "fz/" + "z" * 8190, "fz/" + "w" * 65_532,
        ]
        self._event_numbers = {writer: 0 for writer in self.writers}

    def name(self) -> str:
        rng = self.rng
        if rng.random() < 0.85:
            return rng.choice(self.names[:9])
        return rng.choice(self.names)

    def int_of(self, wire: WireType) -> int:
        rng = self.rng
        if rng.random() < 0.6:
            return rng.choice(_INT_EDGES[wire])
        bits = _INT_RANGE[wire]
        return rng.randrange(-(2**bits), 2**bits) if rng.random() < 0.3 else rng.randrange(0, 1 << min(bits, 16))

    def data(self) -> bytes:
        rng = self.rng
        size = rng.choice((0, 1, 8, 13, 100, 512)) if rng.random() < 0.97 else rng.randrange(1, 64 * 1024)
        return rng.randbytes(size)

    def key(self) -> bytes:
        rng = self.rng
        return rng.choice((b"", b"k", rng.randbytes(rng.randrange(1, 40)), b"K" * 8193)) if rng.random() < 0.3 \
            else rng.choice((b"a", b"b", b"c", b"d"))

    def value_of(self, wire: WireType) -> Any:
        rng = self.rng
        if wire in _INT_EDGES:
            return self.int_of(wire)
        if wire is WireType.BOOL:
            return rng.random() < 0.5
        if wire is WireType.UTF:
            return self.name()
        if wire is WireType.UUID:
            return rng.choice(self.writers) if rng.random() < 0.7 else uuid.UUID(int=rng.getrandbits(128))
        if wire in (WireType.BYTES, WireType.REST, WireType.EVENT):
            return self.data()
        if wire is WireType.I64_LIST:
            return tuple(self.int_of(WireType.I64) for _ in range(rng.randrange(4)))
        if wire is WireType.UTF_LIST:
            return tuple(self.name() for _ in range(rng.randrange(5)))
        if wire is WireType.TABLE_KEYS:
            return tuple(TableKey(self.key(), self.version()) for _ in range(rng.randrange(5)))
        if wire is WireType.TABLE_ENTRIES:
            return tuple(TableEntry(TableKey(self.key(), self.version()), self.data()) for _ in range(rng.randrange(5)))
        if wire is WireType.ITERATOR_ARGS:
            return TableIteratorArgs(*(rng.choice((b"", b"\x01a", rng.randbytes(8))) for _ in range(4)))
        if wire is WireType.ATTRIBUTE_UPDATES:
            return tuple(ConditionalAttributeUpdate(uuid.UUID(int=rng.getrandbits(128)), self.int_of(WireType.I8),
                                                    self.int_of(WireType.I64), self.int_of(WireType.I64))
                         for _ in range(rng.randrange(3)))
        raise ValueError(f"no generator for {wire}")

    def version(self) -> int:
        return self.rng.choice((NO_VERSION, -1, 0, 12, 2**40))

    def command(self, type_code: int) -> Request:
        cls = COMMANDS[type_code]
        values = {}
        for name, wire in cls.LAYOUT:
            values[name] = self.value_of(wire.type if isinstance(wire, Opt) else wire)
        if "delegation_token" in values:
            values["delegation_token"] = ""
        return cls(**values)  # type: ignore[return-value]

    def append_sequence(self, *, edges: bool) -> list[bytes]:
        """SetupAppend + a few AppendBlockEnds of one writer (valid, or with edge fields that close the
        connection when ``edges``)."""
        rng = self.rng
        writer = rng.choice(self.writers)
        frames = [encode(SetupAppend(next_request_id(), writer, self.name(), ""))]
        for _ in range(rng.randrange(1, 4)):
            self._event_numbers[writer] += rng.choice((1, 1, 1, 0, 5) if edges else (1, 5))
            payload = self.data()
            count = rng.choice((1, 1, 2, 0, -1) if edges else (1, 2))
            frames.append(encode(AppendBlockEnd(writer, len(payload), payload, count,
                                                self._event_numbers[writer], next_request_id())))
        return frames

    def frames(self, *, mutate: bool) -> tuple[list[bytes], bool]:
        """The next frames to send, and whether they were mutated. Without ``mutate`` every frame is well-formed
        (its fields may still be out of range), so the connection should stay open."""
        rng = self.rng
        if rng.random() < 0.1:
            return self.append_sequence(edges=mutate), False
        type_code = rng.choice(_REQUEST_TYPES if mutate else _PLAIN_TYPES)
        try:
            frame = encode(self.command(type_code))
        except ProtocolError:
            frame = encode(self.command(GetStreamSegmentInfo.TYPE))
        if not mutate or rng.random() < 0.5:
            return [frame], False
        return [self.mutate(frame)], True

    def mutate(self, frame: bytes) -> bytes:
        rng = self.rng
        data = bytearray(frame)
        how = rng.randrange(7)
        if how == 0 and len(data) > HEADER.size:
            for _ in range(rng.randrange(1, 5)):
                position = rng.randrange(HEADER.size, len(data))
                data[position] ^= 1 << rng.randrange(8)
        elif how == 1 and len(data) > HEADER.size:
            cut = rng.randrange(HEADER.size, len(data))
            data = data[:cut]
            _I32I32.pack_into(data, 0, _I32I32.unpack_from(data, 0)[0], cut - HEADER.size)
        elif how == 2:
            _I32I32.pack_into(data, 0, rng.choice(_ALL_TYPES), len(data) - HEADER.size)
        elif how == 3:
            extra = rng.randbytes(rng.randrange(1, 64))
            data += extra
            _I32I32.pack_into(data, 0, _I32I32.unpack_from(data, 0)[0], len(data) - HEADER.size)
        elif how == 4:
            length = rng.choice((-1, -(2**31), 0x00FFFFFF, 0x01000000, len(data)))
            _I32I32.pack_into(data, 0, _I32I32.unpack_from(data, 0)[0], length)
            data = data[: HEADER.size + max(0, min(length, len(data) - HEADER.size))]
        elif how == 5 and len(data) > HEADER.size + 2:
            position = rng.randrange(HEADER.size, len(data) - 1)
            data[position:position + 2] = rng.choice((b"\xff\xff", b"\x00\x00", b"\x80\x00", b"\xc0\x80"))
        else:
            data = bytearray(HEADER.pack(rng.choice(_REQUEST_TYPES), rng.randrange(0, 200)))
            data += rng.randbytes(_I32I32.unpack_from(data, 0)[1])
        return bytes(data)


class WireFuzzer:
    """Fuzzes the segment store at ``host:port`` (process ``pid``, for memory figures)."""

    def __init__(self, host: str, port: int, pid: int, *, seed: int = 0, containers: int = 4,
                 rss_limit_mib: float = 1024.0, frames_per_connection: int = 300,
                 log_path: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.pid = pid
        self.containers = containers
        self.rss_limit_mib = rss_limit_mib
        self.frames_per_connection = frames_per_connection
        self.log_path = log_path
        self.factory = FrameFactory(random.Random(seed))
        self.figures = FuzzFigures()
        self._reference = b"".join(struct.pack(">ii", 0, 32) + bytes([i]) * 32 for i in range(256))
        self._table = {f"key-{i}".encode(): f"value-{i}".encode() * 10 for i in range(20)}
        self._started = time.monotonic()

    async def setup(self) -> None:
        """Write the reference data (a segment of events, a table) that every check reads back."""
        conn = await RawConnection.connect(self.host, self.port)
        try:
            await _expect(conn, CreateSegment(next_request_id(), REF_SEGMENT), SegmentCreated)
            writer = uuid.uuid4()
            await _expect(conn, SetupAppend(next_request_id(), writer, REF_SEGMENT, ""), AppendSetup)
            acked: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

            def on_reply(reply: Reply) -> None:
                if not acked.done():
                    acked.set_result(reply)

            conn.add_listener(writer, on_reply)
            conn.send(AppendBlockEnd(writer, len(self._reference), self._reference, 256, 256, next_request_id()))
            reply = await asyncio.wait_for(acked, 30)
            if not isinstance(reply, DataAppended):
                raise FuzzFailure(f"reference append answered {reply!r}")
            await _expect(conn, CreateTableSegment(next_request_id(), REF_TABLE, ""), SegmentCreated)
            entries = tuple(TableEntry(TableKey(k, NO_VERSION), v) for k, v in self._table.items())
            await _expect(conn, UpdateTableEntries(next_request_id(), REF_TABLE, "", entries), TableEntriesUpdated)
        finally:
            await conn.close()
        self.figures.start_rss_mib = self.figures.peak_rss_mib = resident_mib(self.pid)

    async def run(self, frames: int, *, check_every: int = 2000, time_limit: float | None = None) -> FuzzFigures:
        """Send about ``frames`` frames, checking after every ``check_every`` (and stop early at ``time_limit``
        seconds). Raises FuzzFailure on the first failed check."""
        deadline = None if time_limit is None else time.monotonic() + time_limit
        while self.figures.frames_sent < frames and (deadline is None or time.monotonic() < deadline):
            target = min(frames, self.figures.frames_sent + check_every)
            while self.figures.frames_sent < target:
                await self._connection(min(self.frames_per_connection, target - self.figures.frames_sent))
            self.figures.batches += 1
            await self.check()
        self.figures.seconds = round(time.monotonic() - self._started, 1)
        return self.figures

    async def _connection(self, count: int) -> None:
        figures = self.figures
        figures.connections += 1
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 10)
        except (OSError, TimeoutError) as exc:
            figures.hangs += 1
            raise FuzzFailure(f"the server does not accept connections: {exc!r}") from exc
        drained = asyncio.ensure_future(self._drain(reader))
        mutate = self.factory.rng.random() < 0.3
        if mutate:
            count = min(count, 20)
        try:
            writer.write(encode(Hello(17, 5)))
            sent = 0
            while sent < count and not drained.done():
                chunk: list[bytes] = []
                while sent < count and len(chunk) < 50:
                    frames, mutated = self.factory.frames(mutate=mutate)
                    chunk.extend(frames)
                    sent += len(frames)
                    figures.mutated_frames += mutated
                writer.write(b"".join(chunk))
                try:
                    await asyncio.wait_for(writer.drain(), 30)
                except (ConnectionError, OSError):
                    break
                except TimeoutError:
                    figures.hangs += 1
                    raise FuzzFailure("the server stopped reading a connection for 30 s") from None
            figures.frames_sent += max(sent, 1)
            figures.connections_closed_by_server += drained.done()
            with contextlib.suppress(OSError):
                writer.write_eof()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(drained), 2)
        finally:
            writer.close()
            drained.cancel()
            with contextlib.suppress(BaseException):
                await drained

    async def _drain(self, reader: asyncio.StreamReader) -> bool:
        """Count replies until the server closes (True) or we stop listening."""
        frames = FrameDecoder()
        by_type = self.figures.replies_by_type
        try:
            while chunk := await reader.read(256 * 1024):
                for type_code, payload in frames.feed(chunk):
                    self.figures.replies += 1
                    name = COMMANDS[type_code].__name__ if type_code in COMMANDS else str(type_code)
                    by_type[name] = by_type.get(name, 0) + 1
                    if type_code == ErrorMessage.TYPE:
                        self.figures.error_replies += 1
                    del payload
        except (ConnectionError, OSError):
            pass
        return True

    async def check(self) -> None:
        """Reference data intact, a fresh connection answered, every container writable, memory bounded."""
        self.figures.checks += 1
        try:
            conn = await RawConnection.connect(self.host, self.port)
        except Exception as exc:
            self.figures.hangs += 1
            raise FuzzFailure(f"a fresh connection is not answered: {exc!r}") from exc
        try:
            await self._check_on(conn)
        except FuzzFailure:
            raise
        except Exception as exc:
            raise FuzzFailure(f"a check request failed: {exc!r}") from exc
        finally:
            await conn.close()
        if self.log_path is not None:
            log = self.log_path.read_text(errors="replace")
            if "durable log failed" in log:
                self.figures.container_failures += 1
                raise FuzzFailure("a container's durable log failed (see the server log)")
            self.figures.internal_errors = sum(log.count(marker) for marker in _INTERNAL_ERRORS)
            if self.figures.internal_errors:
                raise FuzzFailure(f"{self.figures.internal_errors} requests failed with an unexpected exception "
                                  f"(see {self.log_path})")
        rss = resident_mib(self.pid)
        self.figures.peak_rss_mib = max(self.figures.peak_rss_mib, round(rss, 1))
        if rss > self.rss_limit_mib:
            raise FuzzFailure(f"resident memory {rss:.0f} MiB exceeds the bound of {self.rss_limit_mib:.0f} MiB")

    async def _check_on(self, conn: RawConnection) -> None:
        info = await conn.request(GetStreamSegmentInfo(next_request_id(), REF_SEGMENT, ""), timeout=10)
        if not isinstance(info, StreamSegmentInfo) or info.write_offset != len(self._reference):
            raise FuzzFailure(f"reference segment changed: {info!r}")
        data = b""
        while len(data) < len(self._reference):
            read = await conn.request(ReadSegment(REF_SEGMENT, len(data), 1 << 20, "", next_request_id()),
                                      timeout=10)
            if not isinstance(read, SegmentRead) or not read.data:
                raise FuzzFailure(f"reference segment read answered {read!r}")
            data += read.data
        if data != self._reference:
            raise FuzzFailure("reference segment bytes changed")
        keys = tuple(TableKey(k, NO_VERSION) for k in self._table)
        table = await conn.request(ReadTable(next_request_id(), REF_TABLE, "", keys), timeout=10)
        if not isinstance(table, TableRead) or {e.key.key: e.value for e in table.entries} != self._table:
            raise FuzzFailure(f"reference table changed: {table!r}")
        await self._probe_containers(conn)

    async def _probe_containers(self, conn: RawConnection) -> None:
        """Create a segment in every container: a failed container cannot."""
        found: dict[int, str] = {}
        index = 0
        while len(found) < self.containers:
            name = f"probe/{self.figures.checks}-{index}/0.#epoch.0"
            found.setdefault(container_id_for(name, self.containers), name)
            index += 1
        for container_id, name in sorted(found.items()):
            reply = await conn.request(CreateSegment(next_request_id(), name), timeout=10)
            if not isinstance(reply, SegmentCreated | SegmentAlreadyExists):
                self.figures.container_failures += 1
                raise FuzzFailure(f"container {container_id} does not take a write: {reply!r}")


async def _expect(conn: RawConnection, request: Request, reply_type: type) -> None:
    reply = await conn.request(request, timeout=30)
    if not isinstance(reply, reply_type):
        raise FuzzFailure(f"{type(request).__name__} answered {reply!r}")
