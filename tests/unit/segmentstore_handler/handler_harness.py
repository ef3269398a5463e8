"""Drive a ConnectionHandler without sockets: commands in (through a real ServerConnection), replies out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from anabranch.protocol.codec import decode, encode
from anabranch.protocol.commands import AppendBlockEnd, Reply, WireCommand
from anabranch.protocol.framing import FrameDecoder
from anabranch.protocol.server_connection import ServerConnection
from anabranch.segmentstore.handler import ConnectionHandler
from anabranch.segmentstore.handler_merges import MergeHistory
from anabranch.segmentstore.store import SegmentStore, open_segment_store
from anabranch.segmentstore.tables import TableStore


class Client:
    """One simulated connection: ``send`` commands, ``wait_reply`` for replies, ``closed`` after a failure."""

    def __init__(self, store: SegmentStore, tables: TableStore, tail_read_timeout: float = 0.2,
                 merges: MergeHistory | None = None) -> None:
        self.replies: list[Reply] = []
        self.closed = False
        self.paused = False
        self.removed: list[uuid.UUID] = []
        self._frames = FrameDecoder()
        self._changed = asyncio.Event()
        self.connection = ServerConnection()

        def remove(writer_id: uuid.UUID) -> None:
            self.removed.append(writer_id)
            self.connection.remove_writer(writer_id)

        self.handler = ConnectionHandler(store, tables, self, remove_writer=remove,
                                         tail_read_timeout=tail_read_timeout, peer="test:1", merges=merges)

    # Output
    def write(self, frame: bytes) -> None:
        for type_code, payload in self._frames.feed(frame):
            self.replies.append(decode(type_code, payload))  # type: ignore[arg-type]
        self._changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def send(self, *commands: WireCommand) -> None:
        self.handler.handle_all(self.connection.receive_data(b"".join(encode(c) for c in commands)))

    def append(self, writer_id: uuid.UUID, data: bytes, events: int, last_event: int, request_id: int) -> None:
        self.send(AppendBlockEnd(writer_id, len(data), data, events, last_event, request_id))

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def wait_reply(self, request_id: int, timeout: float = 5.0) -> Reply:
        def find() -> Reply | None:
            return next((r for r in self.replies if getattr(r, "request_id", None) == request_id), None)

        await self.wait_until(lambda: find() is not None, timeout)
        reply = find()
        assert reply is not None
        self.replies.remove(reply)
        return reply

    async def call(self, command: WireCommand, timeout: float = 5.0) -> Reply:
        self.send(command)
        return await self.wait_reply(int(getattr(command, "request_id")), timeout)  # noqa: B009


async def open_store(path: Path) -> tuple[SegmentStore, TableStore]:
    store = await open_segment_store(path, 2, durable=False)
    return store, TableStore(store)
