"""Shared pieces of the Tier-1 (JetStream log) tests: opening logs of one container with rising epochs."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence

import nats

from anabranch.storage.jetstream_log import JetStreamDurableDataLog


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
