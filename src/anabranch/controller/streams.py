"""Scope and stream lifecycle workflows: create, update, seal, truncate, delete, tags.

Each workflow returns the name of its proto status enum value (``"SUCCESS"``, ``"STREAM_EXISTS"``...)
and is idempotent: it records its intent (state CREATING/SEALING/..., a truncation record) before
touching the segment store, so ``resume`` can finish it after a crash. Workflows on one stream run
one at a time (per-stream lock). Scaling lives in ``scaling``, transactions in ``transactions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import cbor2

from anabranch.controller.context import ControllerContext, StreamView
from anabranch.controller.epochs import all_segments, first_epoch, is_before
from anabranch.controller.errors import (
    BadOffsetError,
    IllegalStateError,
    InvalidTruncationError,
    NoSuchSegmentError,
    StreamNotFoundError,
    TableNotEmptyError,
)
from anabranch.controller.metadata import SCOPE_INDEXES, Table
from anabranch.controller.records import StreamConfiguration, StreamState
from anabranch.controller.scaling import Scaling
from anabranch.controller.truncation import truncation_problem
from anabranch.controller.validation import MAX_SEGMENTS_PER_EPOCH
from anabranch.model.keyspace import initial_ranges
from anabranch.model.names import (
    MARK_PREFIX,
    SYSTEM_SCOPE,
    is_valid_name,
    mark_stream_name,
    qualified_segment_name,
)
from anabranch.protocol.commands import NO_VERSION

log = logging.getLogger(__name__)
T = TypeVar("T")
U = TypeVar("U")

MAX_TAGS = 128
SWEEP_CONCURRENCY = 64
STREAM_INDEX_VALUE = None
"""The value of a stream's entry in its scope's ``streams`` index: only the key is ever read, and the segment store
keeps every entry of this hot index in memory (the one-byte encoding of None is a shared object; a creation time
was about 50 bytes per stream there)."""
"""Streams the startup sweep reads at once (each read is one segment-store round trip)."""
SWEEP_PAGE = 256
TXN_KEY_PREFIX = b"txn/"
MAX_TAG_LENGTH = 256
LIVE_SCOPES = 4096
"""Scopes a controller remembers having seen exist, so a create in one skips reading the scope's record (a create
then proves the scope still exists when it adds the stream to the scope's index, which fails once the scope is
deleted). Past this many the memory is cleared and refilled by later creates."""


def config_problem(config: StreamConfiguration) -> str | None:
    """Why a stream configuration is unacceptable (answered FAILURE), or None."""
    s = config.scaling
    if s.scale_type not in (0, 1, 2):
        return f"unknown scale type {s.scale_type}"
    if s.min_segments <= 0:
        return "minNumSegments must be > 0"
    if s.min_segments > MAX_SEGMENTS_PER_EPOCH:
        return f"minNumSegments must be <= {MAX_SEGMENTS_PER_EPOCH}"
    if s.scale_type != 0 and (s.target_rate <= 0 or s.scale_factor <= 0):
        return "rate-based scaling needs targetRate > 0 and scaleFactor > 0"
    if config.retention is not None and config.retention.retention_type not in (0, 1, 2):
        return f"unknown retention type {config.retention.retention_type}"
    if len(config.tags) >= MAX_TAGS or any(len(t) >= MAX_TAG_LENGTH for t in config.tags):
        return f"at most {MAX_TAGS - 1} tags of at most {MAX_TAG_LENGTH - 1} characters"
    if config.rollover_size_bytes < 0:
        return "rolloverSizeBytes must be >= 0"
    return None


async def _all_settled(steps: list[Awaitable[object]]) -> None:
    """Run ``steps`` at once and wait for every one (so none outlives the stream's lock); raise the first error. The
    last step runs in the calling task, the others in tasks of their own (a task fewer than ``gather``)."""
    if not steps:
        return
    *others, last = steps
    tasks = [asyncio.ensure_future(step) for step in others]
    error: BaseException | None = None
    try:
        await last
    except BaseException as exc:
        error = exc
    for task in tasks:
        try:
            await task
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error


async def _beside(background: Awaitable[T], inline: Awaitable[U]) -> tuple[T, U]:
    """Both results: ``background`` runs in a task while ``inline`` runs in the calling task (a read from a segment
    store in this process often completes without a turn of the loop); both finish before either's error is
    raised."""
    task = asyncio.ensure_future(background)
    try:
        value = await inline
    except BaseException:
        with contextlib.suppress(BaseException):
            await task
        raise
    return await task, value


def _tag_key(tag: str, stream: str) -> bytes:
    return cbor2.dumps([tag, stream])


class Streams:
    """Scopes and stream lifecycle."""

    def __init__(self, ctx: ControllerContext, scaling: Scaling) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.scaling = scaling
        self.before_seal: list[Callable[[StreamView], Awaitable[None]]] = []
        self._live_scopes: set[str] = set()

    # ---- scopes ----

    async def create_scope(self, scope: str) -> str:
        if not is_valid_name(scope):
            return "INVALID_SCOPE_NAME"
        async with self.ctx.lock(scope, ""):
            if await self.store.scope_exists(scope):
                return "SCOPE_EXISTS"
            for index in SCOPE_INDEXES:
                await self.store.scope_index(scope, index).create()
            await self.store.scopes.put(scope, {"created": self.ctx.wall_ms()})
            return "SUCCESS"

    async def delete_scope(self, scope: str) -> str:
        if scope == SYSTEM_SCOPE:
            return "FAILURE"
        async with self.ctx.lock(scope, ""):
            self._live_scopes.discard(scope)
            if not await self.store.scope_exists(scope):
                return "SCOPE_NOT_FOUND"
            for index in ("streams", "readerGroups", "kvTables"):
                if not await self.store.scope_index(scope, index).is_empty():
                    return "SCOPE_NOT_EMPTY"
            await self.store.scopes.remove(scope)
            for index in SCOPE_INDEXES:
                try:
                    await self.store.scope_index(scope, index).delete(must_be_empty=index != "tags")
                except TableNotEmptyError:
                    log.warning("scope %s index %s not empty while deleting the scope", scope, index)
            return "SUCCESS"

    async def list_page(self, table_kind: str, scope: str, token: bytes, count: int) -> tuple[list[str], bytes]:
        table = self.store.scopes if table_kind == "scopes" else self.store.scope_index(scope, table_kind)
        entries, next_token = await table.page(token, count)
        return [key.decode() for key, _ in entries], next_token

    async def streams_with_tag(self, scope: str, tag: str) -> list[str]:
        found = []
        async for key, _value, _version in self.store.scope_index(scope, "tags").items():
            entry_tag, stream = cbor2.loads(key)
            if entry_tag == tag:
                found.append(stream)
        return sorted(found)

    # ---- create ----

    async def create_stream(self, scope: str, stream: str, config: StreamConfiguration) -> str:
        if not is_valid_name(stream):
            return "INVALID_STREAM_NAME"
        problem = config_problem(config)
        if problem is not None:
            log.info("refusing stream %s/%s: %s", scope, stream, problem)
            return "FAILURE"
        # Shielded: a client that gives up does not interrupt the create half way (a crash leaves the CREATING
        # record, which the sweep finishes).
        return await asyncio.shield(self._create_stream(scope, stream, config))

    async def _create_stream(self, scope: str, stream: str, config: StreamConfiguration) -> str:
        """Three rounds: read the stream's deleted-stream record (and the scope's, unless this controller has seen
        the scope before) while creating the stream's table (only a table that existed already is read for the
        stream's state: a new stream costs no read of it); create the segments and the index entries at once; write
        all the stream's records, ACTIVE, in one table update. Until that update the stream does not exist: a crash
        before it leaves only pieces a new create reuses (creating a segment or table that exists is fine) and an
        index entry the startup sweep removes. A table created for a scope that turns out not to exist is deleted
        again, with the segments when the scope was deleted since this controller saw it (the index entry's table is
        gone). A stream left CREATING by an older version is finished by the next create or the sweep. The mark
        stream ``_MARK<stream>`` is created later, when first needed (``ensure_mark_stream``)."""
        async with self.ctx.lock(scope, stream):
            table = self.store.stream_table(scope, stream)
            deleted_record = self.store.deleted_streams.get_value(f"{scope}/{stream}")
            if scope in self._live_scopes:
                created, start = await _beside(table.create(), deleted_record)
            else:
                scope_found, created, start = await asyncio.gather(
                    self.store.scope_exists(scope), table.create(), deleted_record)
                if not scope_found:
                    if created:
                        await table.delete()
                    return "SCOPE_NOT_FOUND"
                self._remember_scope(scope)
            state = None if created else await self._state_of(table)
            if state is not None and state["state"] != StreamState.CREATING:
                return "STREAM_EXISTS"
            if state is not None:
                await self._finish_create(await self.ctx.view(scope, stream))
                return "SUCCESS"
            epoch0 = first_epoch(initial_ranges(config.scaling.min_segments), start or 0, self.ctx.wall_ms())
            scaling = config.scaling
            segments = [qualified_segment_name(scope, stream, seg.id) for seg in epoch0.segments]
            steps: list[Awaitable[object]] = [
                self.store.scope_index(scope, "streams").put(stream, STREAM_INDEX_VALUE),
                *([self._index_tags(scope, stream, (), config.tags)] if config.tags else []),
                *(self.ctx.ops.create_segment(name, scaling.scale_type, scaling.target_rate,
                                              config.rollover_size_bytes) for name in segments)]
            try:
                await _all_settled(steps)
            except NoSuchSegmentError:
                if await self.store.scope_exists(scope):
                    raise
                self._live_scopes.discard(scope)
                await _all_settled([*(self.ctx.ops.delete_segment(name) for name in segments), table.delete()])
                return "SCOPE_NOT_FOUND"
            await table.put_many([
                ("config", config.encode(), NO_VERSION),
                ("state", {"state": StreamState.ACTIVE.value}, NO_VERSION),
                ("epochs", {"active": 0, "latest": 0, "next": (start or 0) + len(epoch0.segments)}, NO_VERSION),
                ("epoch/0", epoch0.encode(), NO_VERSION),
            ])
            self.store.remember_epoch(scope, stream, 0, epoch0)
        return "SUCCESS"

    def _remember_scope(self, scope: str) -> None:
        if len(self._live_scopes) >= LIVE_SCOPES:
            self._live_scopes.clear()
        self._live_scopes.add(scope)

    @staticmethod
    async def _state_of(table: Table) -> Any:
        try:
            return await table.get_value("state")
        except NoSuchSegmentError:
            return None

    async def _finish_create(self, view: StreamView) -> None:
        """Finish a stream left CREATING (by an older version of the create workflow)."""
        scaling = view.config.scaling
        steps: list[Awaitable[object]] = [
            self.ctx.ops.create_segment(view.segment_name(seg.id), scaling.scale_type, scaling.target_rate,
                                        view.config.rollover_size_bytes)
            for seg in (await self.ctx.epoch(view, 0)).segments]
        steps.append(self.store.scope_index(view.scope, "streams").put(view.stream, STREAM_INDEX_VALUE))
        steps.append(self._index_tags(view.scope, view.stream, (), view.config.tags))
        await _all_settled(steps)
        await self.ctx.set_state(view, StreamState.ACTIVE)

    async def ensure_mark_stream(self, scope: str, mark: str) -> bool:
        """Create the mark stream ``mark`` (``_MARK<s>``) if stream ``s`` exists and it does not yet; False if ``s``
        does not exist. Mark streams are created when first needed (the watermark job's first watermark, a reader
        asking for the marks' segments), so a stream nobody watermarks costs no mark stream. Runs under ``s``'s lock:
        a delete of ``s`` (which deletes the mark stream after it) cannot leave a mark stream behind."""
        stream = mark[len(MARK_PREFIX):]
        if not mark.startswith(MARK_PREFIX) or not stream or stream.startswith("_"):
            return False
        if await self.store.stream_exists(scope, mark):
            return True
        async with self.ctx.lock(scope, stream):
            if not await self.store.stream_exists(scope, stream):
                return False
            status = await self.create_stream(scope, mark, StreamConfiguration())
        if status not in ("SUCCESS", "STREAM_EXISTS"):
            raise IllegalStateError(f"creating the mark stream of {scope}/{stream} answered {status}")
        return True

    async def _index_tags(self, scope: str, stream: str, old: tuple[str, ...], new: tuple[str, ...]) -> None:
        index = self.store.scope_index(scope, "tags")
        gone = [(_tag_key(t, stream), NO_VERSION) for t in set(old) - set(new)]
        if gone:
            await self.ctx.ops.remove_keys(index.name, gone)
        added: list[tuple[str | bytes, object, int]] = [(_tag_key(t, stream), {}, NO_VERSION) for t in sorted(set(new))]
        if added:
            await index.put_many(added)

    async def get_config(self, scope: str, stream: str) -> StreamConfiguration:
        return (await self.ctx.view(scope, stream)).config

    # ---- update ----

    async def update_stream(self, scope: str, stream: str, config: StreamConfiguration) -> str:
        async with self.ctx.lock(scope, stream):
            try:
                view = await self.ctx.view(scope, stream)
            except StreamNotFoundError:
                return "STREAM_NOT_FOUND"
            view = await self._resume_locked(view)
            if view.state in (StreamState.SEALED, StreamState.SEALING):
                return "STREAM_SEALED"
            if view.state is StreamState.CREATING or config_problem(config) is not None:
                return "FAILURE"
            old = view.config
            await self.ctx.set_state(view, StreamState.UPDATING)
            await view.table.put("config", config.encode())
            view.config = config
            await self._finish_update(view, old.tags)
        return "SUCCESS"

    async def _finish_update(self, view: StreamView, old_tags: tuple[str, ...]) -> None:
        scaling = view.config.scaling
        active = await self.ctx.active_segments(view)
        await asyncio.gather(*(
            self.ctx.ops.update_segment_policy(view.segment_name(seg.id), scaling.scale_type, scaling.target_rate)
            for seg in active))
        await self._index_tags(view.scope, view.stream, old_tags, view.config.tags)
        count, wanted = len(active), scaling.min_segments
        if count < wanted or (scaling.scale_type == 0 and count != wanted):
            await self.scaling.scale_locked(view, [s.id for s in active], initial_ranges(wanted))
            view = await self.ctx.view(view.scope, view.stream)
        await self.ctx.set_state(view, StreamState.ACTIVE)

    # ---- seal ----

    async def seal_stream(self, scope: str, stream: str) -> str:
        async with self.ctx.lock(scope, stream):
            try:
                view = await self.ctx.view(scope, stream)
            except StreamNotFoundError:
                return "STREAM_NOT_FOUND"
            view = await self._resume_locked(view)
            if view.state is StreamState.SEALED:
                return "SUCCESS"
            if view.state is StreamState.CREATING:
                return "FAILURE"
            await self.ctx.set_state(view, StreamState.SEALING)
            await self._finish_seal(view)
        return "SUCCESS"

    async def _finish_seal(self, view: StreamView) -> None:
        for hook in self.before_seal:
            await hook(view)
        view = await self.ctx.view(view.scope, view.stream)
        await asyncio.gather(*(self.ctx.ops.seal_segment(view.segment_name(seg.id))
                               for seg in (await self.ctx.epoch(view, view.active)).segments))
        await self.ctx.set_state(view, StreamState.SEALED)

    # ---- delete ----

    async def delete_stream(self, scope: str, stream: str) -> str:
        status = "SUCCESS"
        async with self.ctx.lock(scope, stream):
            try:
                view = await self.ctx.view(scope, stream)
            except StreamNotFoundError:
                status = "STREAM_NOT_FOUND"
            else:
                view = await self._resume_locked(view)
                if view.state not in (StreamState.SEALED, StreamState.CREATING):
                    return "STREAM_NOT_SEALED"
                await self._delete_locked(view)
        if not stream.startswith("_"):
            await self.delete_internal_stream(scope, mark_stream_name(stream))
        return status

    async def delete_internal_stream(self, scope: str, stream: str) -> None:
        """Seal (if needed) and delete an internal stream such as ``_MARK<s>`` or ``_RG<g>``; missing is fine."""
        if await self.seal_stream(scope, stream) == "STREAM_NOT_FOUND":
            return
        await self.delete_stream(scope, stream)

    async def _delete_locked(self, view: StreamView) -> None:
        await asyncio.gather(*(self.ctx.ops.delete_segment(view.segment_name(seg_id))
                               for seg_id in all_segments(await self.ctx.all_epochs(view))))
        await self.store.deleted_streams.put(f"{view.scope}/{view.stream}", view.next_number)
        await self._index_tags(view.scope, view.stream, view.config.tags, ())
        await view.table.delete()
        await self.store.scope_index(view.scope, "streams").remove(view.stream)
        self.store.forget_stream(view.scope, view.stream)

    # ---- truncate ----

    async def truncate_stream(self, scope: str, stream: str, cut: Mapping[int, int]) -> str:
        """Truncate at ``cut``; ``InvalidTruncationError`` (with the reason) if the cut does not fit the stream."""
        async with self.ctx.lock(scope, stream):
            try:
                view = await self.ctx.view(scope, stream)
            except StreamNotFoundError:
                return "STREAM_NOT_FOUND"
            view = await self._resume_locked(view)
            if view.state in (StreamState.SEALED, StreamState.SEALING):
                return "STREAM_SEALED"
            if view.state is not StreamState.ACTIVE:
                return "FAILURE"
            segments = all_segments(await self.ctx.all_epochs(view))
            previous = await view.table.get_value("truncation")
            problem = await truncation_problem(
                self.ctx, view, cut, segments,
                None if previous is None else {int(k): int(v) for k, v in previous["cut"].items()})
            if problem is not None:
                raise InvalidTruncationError(f"cannot truncate stream {scope}/{stream}: {problem}")
            await self.ctx.set_state(view, StreamState.TRUNCATING)
            await view.table.put("truncation", {"cut": dict(cut), "done": False, "time": self.ctx.wall_ms()})
            await self._finish_truncate(view)
        return "SUCCESS"

    async def _finish_truncate(self, view: StreamView) -> None:
        record = await view.table.get_value("truncation")
        cut: dict[int, int] = {int(k): int(v) for k, v in record["cut"].items()}
        segments = all_segments(await self.ctx.all_epochs(view))
        for seg_id, offset in cut.items():
            if offset > 0:
                await self._truncate_segment(view.segment_name(seg_id), offset)
        cut_segs = [segments[i] for i in cut]
        for seg in segments.values():
            if seg.id not in cut and is_before(seg, cut_segs):
                await self.ctx.ops.delete_segment(view.segment_name(seg.id))
        await view.table.put("truncation", {**record, "cut": cut, "done": True})
        await self.ctx.set_state(view, StreamState.ACTIVE)

    async def _truncate_segment(self, name: str, offset: int) -> None:
        """Truncate at ``offset``; a segment already truncated further (e.g. by a byte-stream client) is fine."""
        try:
            await self.ctx.ops.truncate_segment(name, offset)
        except BadOffsetError:
            if (await self.ctx.ops.get_segment_info(name)).start_offset < offset:
                raise

    # ---- crash recovery ----

    async def resume(self, scope: str, stream: str) -> None:
        """Finish whatever workflow a crash (or a failed request) left unfinished on this stream."""
        async with self.ctx.lock(scope, stream):
            try:
                view = await self.ctx.view(scope, stream)
            except StreamNotFoundError:
                return
            await self._resume_locked(view, finish_create=True)

    async def _resume_locked(self, view: StreamView, finish_create: bool = False) -> StreamView:
        """Finish an interrupted workflow (caller holds the lock); returns the stream's fresh records."""
        if view.transition is not None:
            await self.scaling.complete(view)
            view = await self.ctx.view(view.scope, view.stream)
        if view.state is StreamState.CREATING and finish_create:
            await self._finish_create(view)
        elif view.state is StreamState.UPDATING:
            await self._finish_update(view, ())
        elif view.state is StreamState.SEALING:
            await self._finish_seal(view)
        elif view.state is StreamState.TRUNCATING:
            await self._finish_truncate(view)
        elif view.state is StreamState.SCALING:
            await self.ctx.set_state(view, StreamState.ACTIVE)
        else:
            return view
        return await self.ctx.view(view.scope, view.stream)

    async def resume_all(self, with_txns: Callable[[str, str], Awaitable[None]] | None = None) -> None:
        """The startup sweep: every stream of every scope, plus index entries whose stream vanished; ``with_txns``
        is called (after the stream's own resume) for each stream that has transaction records."""
        async for scope_key, _value, _version in self.store.scopes.items():
            scope = scope_key.decode()
            if scope == SYSTEM_SCOPE:
                continue
            try:
                names = [k.decode() async for k, _v, _ver in self.store.scope_index(scope, "streams").items()]
            except NoSuchSegmentError:
                continue
            await self._sweep_scope(scope, names, with_txns)

    async def _sweep_scope(self, scope: str, names: list[str],
                           with_txns: Callable[[str, str], Awaitable[None]] | None) -> None:
        """``SWEEP_CONCURRENCY`` workers sweep the streams of one scope. (A task per stream behind a semaphore made
        100 k waiting tasks the resident high-water mark of a restart: about 1.5 KB each, which the allocator kept
        after they ended.)"""
        remaining = iter(names)

        async def worker() -> None:
            for stream in remaining:
                await self._sweep(scope, stream, with_txns)

        await asyncio.gather(*(worker() for _ in range(min(SWEEP_CONCURRENCY, len(names)))))

    async def _sweep(self, scope: str, stream: str, with_txns: Callable[[str, str], Awaitable[None]] | None) -> None:
        """One stream of the startup sweep: one read of its records (a page of its table), then a resume only if a
        workflow was left unfinished or it has transactions."""
        table = self.store.stream_table(scope, stream)
        try:
            page, _ = await table.page(b"", SWEEP_PAGE)
            keys = {key: value for key, value in page}
            if len(page) >= SWEEP_PAGE:  # a big table (many epochs, writers or transactions): read it all
                keys = {key: value async for key, value, _version in table.items()}
        except NoSuchSegmentError:
            keys = {}
        if not {b"config", b"state", b"epochs"} <= keys.keys():
            await self.store.scope_index(scope, "streams").remove(stream)
            return
        settled = keys[b"state"].get("state") in (StreamState.ACTIVE, StreamState.SEALED)
        try:
            if b"transition" in keys or not settled:
                await self.resume(scope, stream)
            if with_txns is not None and any(key.startswith(TXN_KEY_PREFIX) for key in keys):
                await with_txns(scope, stream)
        except Exception:
            log.exception("could not resume workflows of stream %s/%s", scope, stream)
