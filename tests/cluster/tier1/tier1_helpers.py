"""Shared pieces of the Tier-1 (JetStream log) tests: opening logs of one container with rising epochs."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from anabranch.storage.jetstream_log import JetStreamDurableDataLog
from anabranch.storage.jetstream_log_format import LogMessage, parse_headers


class Owners:
    """Opens successive owners of one container's log (epoch 1, 2, ...) on one stream prefix; ``cleanup``
    deletes the stream so that the shared NATS cluster does not pile up replicated streams."""

    def __init__(self, servers: Sequence[str], container_id: int = 0, prefix: str | None = None, **options: object):
        self.servers = list(servers)
        self.container_id = container_id
        self.prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
        self.options = options
        self.epoch = 0
        self.logs: list[JetStreamDurableDataLog] = []

    def new(self, epoch: int | None = None) -> JetStreamDurableDataLog:
        self.epoch = epoch if epoch is not None else self.epoch + 1
        log = JetStreamDurableDataLog(self.container_id, self.servers, self.epoch, stream_prefix=self.prefix,
                                      **self.options)  # type: ignore[arg-type]
        self.logs.append(log)
        return log

    async def open(self, epoch: int | None = None) -> JetStreamDurableDataLog:
        log = self.new(epoch)
        await log.open()
        return log

    @property
    def stream(self) -> str:
        return f"{self.prefix}-c{self.container_id}"

    async def cleanup(self) -> None:
        for log in self.logs:
            with contextlib.suppress(Exception):
                await log.close()
        client = await nats.connect(servers=self.servers, connect_timeout=2, max_reconnect_attempts=1)
        try:
            with contextlib.suppress(Exception):
                await client.jetstream(timeout=10).delete_stream(self.stream)
        finally:
            await client.close()


@contextlib.asynccontextmanager
async def owners(servers: Sequence[str], **options: object) -> AsyncIterator[Owners]:
    keeper = Owners(servers, **options)
    try:
        yield keeper
    finally:
        await keeper.cleanup()


async def raw_messages(servers: Sequence[str], stream: str) -> list[tuple[int, LogMessage, bytes]]:
    """Every message of ``stream`` as stored, in stream order: (stream sequence, decoded headers, data)."""
    client = await nats.connect(servers=list(servers), connect_timeout=2, max_reconnect_attempts=1)
    try:
        js = client.jetstream(timeout=10)
        info = await js.stream_info(stream)
        if info.state.messages == 0:
            return []
        subscription = await js.subscribe("", stream=stream, ordered_consumer=True, config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=info.state.first_seq))
        out = []
        while not out or out[-1][0] < info.state.last_seq:
            msg = await subscription.next_msg(timeout=10)
            sequence = msg.metadata.sequence.stream
            out.append((sequence, parse_headers(sequence, msg.headers), msg.data))
        await subscription.unsubscribe()
        return out
    finally:
        await client.close()


def assert_epochs_never_decrease(messages: list[tuple[int, LogMessage, bytes]]) -> None:
    """The fence's invariant: along the stream, no message has an older epoch than one before it."""
    newest = 0
    for sequence, message, _ in messages:
        assert message.epoch >= newest, f"stream message {sequence} of epoch {message.epoch} follows epoch {newest}"
        newest = message.epoch
