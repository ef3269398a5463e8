"""The Beam connector's own durable checkpoints: one record per pipeline in an Anabranch key-value table.

Beam's local runners keep no durable checkpoint, so the connector keeps its own (as Pravega's Flink connector
relies on Flink's): a record named by the pipeline's ``checkpoint_name`` holding

- ``cuts``: for every source stream, the stream cut the reader resumes from (everything before it is done);
- ``pending_txns``: for every output stream, the ids of transactions the writer flushed but had not yet
  committed when the record was written (two-phase commit: on restart they are committed again — committing a
  committed transaction is a no-op — and any other open transaction of the pipeline is aborted);
- ``extra``: free-form JSON the transforms may use (e.g. the writer's id), kept as is across updates.

The record lives in the key-value table ``<scope>/<table>`` (default ``beam-checkpoints``, created on first use
with a ``KEY_LENGTH``-byte primary key: a hash of the name; the name is stored in the record and checked).
Updates are conditional on the version read (``save`` raises ``CheckpointConflictError`` when someone else wrote
the record in between), so two runs of one pipeline cannot both move its checkpoint.

Stored value: UTF-8 JSON ``{"name": str, "cuts": {"scope/stream": {"<segment id>": offset}}, "pending_txns":
{"scope/stream": ["<uuid>", ...]}, "extra": {...}}``.

All methods are coroutines: run them on the client's loop (``BlockingCheckpointStore`` wraps them for DoFns).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from anabranch.client.blocking import LoopThread
from anabranch.client.controller_client import KeyValueTableConfiguration
from anabranch.client.errors import ClientError, KeyDoesNotExistError, VersionConflictError
from anabranch.client.kv_table import KeyValueTable, TableKey
from anabranch.client.stream_manager import StreamManager
from anabranch.errors import DataCorruptionError
from anabranch.model.stream_cut import StreamCut

DEFAULT_TABLE = "beam-checkpoints"
KEY_LENGTH = 16

StreamKey = tuple[str, str]
"""(scope, stream)."""


class CheckpointConflictError(ClientError):
    """The checkpoint record changed since it was read (another run of the same pipeline?): reload and retry,
    or stop the other run."""

    retriable = True


def _stream_key(name: str) -> StreamKey:
    scope, _, stream = name.partition("/")
    if not scope or not stream:
        raise DataCorruptionError(f"malformed stream name {name!r} in a checkpoint record")
    return scope, stream


@dataclass(frozen=True)
class CheckpointRecord:
    """One pipeline's checkpoint. ``version`` is the table entry's version (None: not stored yet)."""

    name: str
    cuts: Mapping[StreamKey, StreamCut] = field(default_factory=dict)
    pending_txns: Mapping[StreamKey, tuple[uuid.UUID, ...]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    version: int | None = None

    def cut(self, scope: str, stream: str) -> StreamCut | None:
        return self.cuts.get((scope, stream))

    def with_cuts(self, cuts: Mapping[StreamKey, StreamCut]) -> CheckpointRecord:
        """This record with the cuts of the given streams replaced (others kept)."""
        return dataclasses.replace(self, cuts={**self.cuts, **cuts})

    def with_pending(self, pending: Mapping[StreamKey, tuple[uuid.UUID, ...]]) -> CheckpointRecord:
        """This record with the pending transactions of the given streams replaced (others kept)."""
        return dataclasses.replace(self, pending_txns={**self.pending_txns, **pending})

    def encode(self) -> bytes:
        return json.dumps({
            "name": self.name,
            "cuts": {f"{s}/{t}": {str(seg): off for seg, off in cut.positions.items()}
                     for (s, t), cut in sorted(self.cuts.items())},
            "pending_txns": {f"{s}/{t}": [str(txn) for txn in txns]
                             for (s, t), txns in sorted(self.pending_txns.items())},
            "extra": dict(self.extra),
        }, sort_keys=True).encode()

    @classmethod
    def decode(cls, payload: bytes, version: int | None = None) -> CheckpointRecord:
        try:
            obj = json.loads(payload)
            cuts = {}
            for name, positions in obj["cuts"].items():
                scope, stream = _stream_key(name)
                cuts[(scope, stream)] = StreamCut(scope, stream, {int(k): int(v) for k, v in positions.items()})
            pending = {_stream_key(name): tuple(uuid.UUID(t) for t in txns)
                       for name, txns in obj["pending_txns"].items()}
            return cls(str(obj["name"]), cuts, pending, dict(obj.get("extra", {})), version)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataCorruptionError(f"malformed checkpoint record {payload[:200]!r}: {exc}") from exc


def record_key(name: str) -> TableKey:
    return TableKey(hashlib.blake2b(name.encode(), digest_size=KEY_LENGTH).digest())


class CheckpointStore:
    """Loads and conditionally saves checkpoint records in ``<scope>/<table>``."""

    def __init__(self, manager: StreamManager, scope: str, table: str = DEFAULT_TABLE) -> None:
        self.manager = manager
        self.scope = scope
        self.table_name = table
        self._table: KeyValueTable | None = None

    async def _kvt(self) -> KeyValueTable:
        if self._table is None:
            await self.manager.create_key_value_table(
                self.scope, self.table_name, KeyValueTableConfiguration(partition_count=1,
                                                                        primary_key_length=KEY_LENGTH))
            self._table = await self.manager.get_key_value_table(self.scope, self.table_name)
        return self._table

    async def load(self, name: str) -> CheckpointRecord | None:
        """The record of ``name``, or None if there is none."""
        entry = await (await self._kvt()).get(record_key(name))
        if entry is None:
            return None
        record = CheckpointRecord.decode(entry.value, entry.version)
        if record.name != name:
            raise DataCorruptionError(f"checkpoint key of {name!r} holds the record of {record.name!r}")
        return record

    async def load_or_new(self, name: str) -> CheckpointRecord:
        return await self.load(name) or CheckpointRecord(name)

    async def save(self, record: CheckpointRecord) -> CheckpointRecord:
        """Writes ``record`` if the stored one still has ``record.version`` (absent when None); returns it with
        its new version. Raises ``CheckpointConflictError`` otherwise."""
        table = await self._kvt()
        key = record_key(record.name)
        try:
            if record.version is None:
                version = await table.put_if_absent(key, record.encode())
            else:
                version = await table.replace(key, record.encode(), record.version)
        except (VersionConflictError, KeyDoesNotExistError) as exc:
            raise CheckpointConflictError(
                f"checkpoint {record.name!r} in {self.scope}/{self.table_name} changed since version "
                f"{record.version}") from exc
        return dataclasses.replace(record, version=version)

    async def delete(self, name: str) -> None:
        """Removes the record of ``name`` (unconditionally); no error when absent."""
        table = await self._kvt()
        entry = await table.get(record_key(name))
        if entry is not None:
            await table.remove(record_key(name))


class BlockingCheckpointStore:
    """``CheckpointStore`` for code outside the client's loop (Beam DoFns): each call runs on ``runner``."""

    def __init__(self, store: CheckpointStore, runner: LoopThread) -> None:
        self.store = store
        self.runner = runner

    def load(self, name: str) -> CheckpointRecord | None:
        return self.runner.run(self.store.load(name))

    def load_or_new(self, name: str) -> CheckpointRecord:
        return self.runner.run(self.store.load_or_new(name))

    def save(self, record: CheckpointRecord) -> CheckpointRecord:
        return self.runner.run(self.store.save(record))

    def delete(self, name: str) -> None:
        self.runner.run(self.store.delete(name))
