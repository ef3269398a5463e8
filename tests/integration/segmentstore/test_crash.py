"""Crash test: concurrent writers, SIGKILL mid-way three times, reconnect and resend the unacked events;
every acked event must be in the segment exactly once and in order per writer."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import pytest
from segmentstore_helpers import connect, create_segment, event, parse_events, read_all, setup_append

from anabranch.client.connection import next_request_id
from anabranch.errors import ConnectionFailedError
from anabranch.protocol.codec import encode_append_block_end
from anabranch.protocol.commands import NULL_ATTRIBUTE_VALUE, DataAppended, Reply
from anabranch.testing.processes import SegmentStoreProcess

pytestmark = pytest.mark.process
SEG = "scope/crash/0.#epoch.0"
WRITERS = 4
BLOCK = 5
WINDOW = 4
KILLS = 3


@dataclass
class Writer:
    index: int
    writer_id: uuid.UUID = field(default_factory=uuid.uuid4)
    acked: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def block(self, first: int) -> bytes:
        return b"".join(event(b"w%d:%d" % (self.index, n)) for n in range(first, first + BLOCK))


async def run_writer(server: SegmentStoreProcess, writer: Writer, stop: asyncio.Event, target: int | None) -> None:
    """Append blocks until ``stop`` (or until ``target`` is acked); returns when done or the server died."""
    conn = await connect(server)
    closed = asyncio.Event()

    def on_close(_: BaseException | None) -> None:
        closed.set()
        writer.progress.set()

    conn.on_close(on_close)
    try:
        last = await setup_append(conn, writer.writer_id, SEG)
        if last != NULL_ATTRIBUTE_VALUE:
            assert last >= writer.acked, "the server lost an acked event"
            writer.acked = last
        next_event = writer.acked + 1

        def on_reply(reply: Reply) -> None:
            assert isinstance(reply, DataAppended), reply
            writer.acked = max(writer.acked, reply.event_number)
            writer.progress.set()

        conn.add_listener(writer.writer_id, on_reply)
        while not closed.is_set():
            if target is not None and writer.acked >= target:
                return
            if stop.is_set() and target is None:
                return
            room = next_event - 1 - writer.acked < WINDOW * BLOCK
            if room and (target is None or next_event <= target):
                data = writer.block(next_event)
                conn.writelines(encode_append_block_end(
                    writer.writer_id, len(data), [data], len(data), BLOCK, next_event + BLOCK - 1, next_request_id()
                ))
                next_event += BLOCK
                await asyncio.sleep(0)
            else:
                writer.progress.clear()
                await writer.progress.wait()
    except ConnectionFailedError:
        return
    finally:
        await conn.close()


async def test_acked_events_survive_sigkill(segmentstore: SegmentStoreProcess) -> None:
    admin = await connect(segmentstore)
    await create_segment(admin, SEG)
    await admin.close()
    writers = [Writer(i) for i in range(WRITERS)]
    for _ in range(KILLS):
        stop = asyncio.Event()
        baseline = [w.acked for w in writers]
        tasks = [asyncio.create_task(run_writer(segmentstore, w, stop, None)) for w in writers]

        async def enough_progress(baseline: list[int] = baseline) -> None:
            while not all(w.acked >= b + 20 * BLOCK for w, b in zip(writers, baseline, strict=True)):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(enough_progress(), 30)
        await asyncio.to_thread(segmentstore.kill)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await asyncio.to_thread(segmentstore.start)

    targets = [((w.acked // BLOCK) + 10) * BLOCK for w in writers]
    final = asyncio.Event()
    await asyncio.wait_for(
        asyncio.gather(*(run_writer(segmentstore, w, final, t) for w, t in zip(writers, targets, strict=True))), 30
    )
    assert [w.acked for w in writers] == targets

    reader = await connect(segmentstore)
    try:
        events = parse_events(await read_all(reader, SEG))
    finally:
        await reader.close()
    per_writer: dict[int, list[int]] = {w.index: [] for w in writers}
    for payload in events:
        index, number = payload.decode().removeprefix("w").split(":")
        per_writer[int(index)].append(int(number))
    for writer, target in zip(writers, targets, strict=True):
        assert per_writer[writer.index] == list(range(1, target + 1)), f"writer {writer.index}"
