"""Replicated state kept consistent across processes with conditional updates on a table segment.

Design (our choice, documented): the state lives as ONE versioned entry of a table segment. The entry's
version is the revision. ``RevisionedTableClient`` is the low level (Pravega's RevisionedStreamClient): read
the latest ``(revision, value)``, write a value only if the revision is still the expected one. On top of it,
``StateSynchronizer`` keeps a local copy and applies ``update_state(updater)``: the updater runs on the newest
state, the result is written conditionally, and on a conflict the state is fetched again and the updater
re-applied, so concurrent clients converge on one history of updates.

Each write stores the whole state (a snapshot), so there is nothing to replay and nothing to compact on the
client; the segment store compacts the table segment's log once superseded snapshots dominate it. Keep states
small (reader-group state is): every update writes the whole state.
Revisions only grow (they are the table's log positions), so the local copy only ever moves forward.
Table segment names follow the Rust client's convention ``<scope>/<name>_kvtable/0.#epoch.0``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from anabranch.client.errors import ClientError, KeyDoesNotExistError, NoSuchSegmentError, VersionConflictError
from anabranch.client.table_client import NOT_EXISTS, TableSegmentClient
from anabranch.model.names import KVTABLE_SUFFIX, qualified_segment_name

log = logging.getLogger(__name__)

S = TypeVar("S")
R = TypeVar("R")
STATE_KEY = b"state"
MAX_CONFLICTS = 1000


def synchronizer_segment(scope: str, name: str) -> str:
    return qualified_segment_name(scope, name + KVTABLE_SUFFIX, 0)


class StateNotInitializedError(ClientError):
    """The synchronizer's state does not exist yet: call ``initialize`` first (or the group/table was deleted)."""


class StateSerializer(Protocol[S]):
    def serialize(self, state: S) -> bytes: ...

    def deserialize(self, data: bytes) -> S: ...


@dataclass(frozen=True, slots=True)
class Revisioned:
    revision: int
    value: bytes


class RevisionedTableClient:
    """Conditional writes of one value: the revision is the table entry's version."""

    def __init__(self, table: TableSegmentClient, key: bytes = STATE_KEY) -> None:
        self.table = table
        self.key = key

    async def create(self) -> bool:
        return await self.table.create()

    async def read(self) -> Revisioned | None:
        try:
            entry = await self.table.get(self.key)
        except NoSuchSegmentError:
            return None
        return None if entry is None else Revisioned(entry.version, entry.value)

    async def write_conditionally(self, expected: int | None, value: bytes) -> int | None:
        """Writes ``value`` if the revision is ``expected`` (None: no value yet); the new revision, or None."""
        try:
            return await self.table.put(self.key, value, NOT_EXISTS if expected is None else expected)
        except (VersionConflictError, KeyDoesNotExistError):
            return None
        except NoSuchSegmentError as exc:
            raise StateNotInitializedError(f"{self.table.segment} does not exist (was it deleted?)") from exc


class StateSynchronizer(Generic[S]):
    """A local copy of shared state, updated only through conditional writes."""

    def __init__(self, client: RevisionedTableClient, serializer: StateSerializer[S]) -> None:
        self.client = client
        self.serializer = serializer
        self._state: S | None = None
        self._revision: int | None = None

    @property
    def revision(self) -> int | None:
        return self._revision

    @property
    def state(self) -> S:
        if self._state is None:
            raise StateNotInitializedError(f"no state fetched from {self.client.table.segment} yet")
        return self._state

    async def initialize(self, initial: S) -> bool:
        """Creates the state if absent; True if this call created it. Either way the local copy is fetched."""
        await self.client.create()
        created = await self.client.write_conditionally(None, self.serializer.serialize(initial)) is not None
        await self.fetch_updates()
        return created

    async def fetch_updates(self) -> bool:
        """Brings the local copy up to date; True if it changed."""
        latest = await self.client.read()
        if latest is None:
            raise StateNotInitializedError(f"{self.client.table.segment} holds no state (was it deleted?)")
        if self._revision is not None and latest.revision <= self._revision:
            return False
        self._adopt(self.serializer.deserialize(latest.value), latest.revision)
        return True

    def _adopt(self, state: S, revision: int) -> None:
        """Keeps the newest of what this client wrote and fetched (concurrent local updaters may finish late)."""
        if self._revision is None or revision > self._revision:
            self._state, self._revision = state, revision

    async def update_state(self, updater: Callable[[S], tuple[S | None, R]]) -> R:
        """Applies ``updater(state) -> (new state or None for no change, result)`` atomically; returns the result.

        An unchanged state (None, or equal to the current one) writes nothing.

        On a conflict with another writer the state is fetched again and ``updater`` re-applied, so it must be
        a pure function of the state.
        """
        if self._state is None:
            await self.fetch_updates()
        for attempt in range(MAX_CONFLICTS):
            new_state, result = updater(self.state)
            if new_state is None or new_state == self._state:
                return result
            revision = await self.client.write_conditionally(self._revision, self.serializer.serialize(new_state))
            if revision is not None:
                self._adopt(new_state, revision)
                return result
            log.debug("conflicting update on %s (attempt %d); refetching", self.client.table.segment, attempt + 1)
            await self.fetch_updates()
            await asyncio.sleep(0)
        raise VersionConflictError(f"{self.client.table.segment}: {MAX_CONFLICTS} conflicting updates in a row")

    async def delete(self) -> bool:
        self._state = None
        self._revision = None
        return await self.client.table.delete()
