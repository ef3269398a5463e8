"""Property test: random operation sequences (with restarts) on ChunkedSegmentStorage match a simple model.

``write_all`` writes to every segment at once, so new segments' first writes share packs; the test ends by checking
that LTS holds exactly the chunks some segment references (a pack is deleted with its last member, not before)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anabranch.storage.chunked_segment_storage import ChunkedSegmentStorage
from anabranch.storage.chunks_memory import InMemoryChunkStorage
from anabranch.storage.interfaces import (
    BadStorageOffsetError,
    StorageError,
    StorageSegmentExistsError,
    StorageSegmentInfo,
    StorageSegmentNotFoundError,
    StorageSegmentNotSealedError,
    StorageSegmentSealedError,
)
from anabranch.testing.lts_conformance import pattern

NAMES = ["s/a/0", "s/a/1", "s/b/0#transaction.1"]


@dataclass
class ModelSegment:
    data: bytearray = field(default_factory=bytearray)
    start: int = 0
    sealed: bool = False


def expected_error(model: dict[str, ModelSegment], op: tuple[object, ...]) -> type[StorageError] | None:
    kind, name = op[0], str(op[1])
    if kind == "create":
        return StorageSegmentExistsError if name in model else None
    if kind == "concat" and op[2] == name:
        return StorageError
    if name not in model:
        return StorageSegmentNotFoundError
    segment = model[name]
    if kind == "write":
        return StorageSegmentSealedError if segment.sealed else None
    if kind == "truncate":
        return None
    if kind == "concat":
        source = str(op[2])
        if source not in model:
            return StorageSegmentNotFoundError
        if segment.sealed:
            return StorageSegmentSealedError
        if not model[source].sealed:
            return StorageSegmentNotSealedError
        return BadStorageOffsetError if model[source].start else None
    return None


def apply_to_model(model: dict[str, ModelSegment], op: tuple[object, ...]) -> None:
    kind, name = op[0], str(op[1])
    if kind == "create":
        model[name] = ModelSegment()
    elif kind == "write":
        model[name].data += pattern(int(str(op[2])), len(model[name].data))
    elif kind == "seal":
        model[name].sealed = True
    elif kind == "truncate":
        segment = model[name]
        segment.start = max(segment.start, len(segment.data) * int(str(op[2])) // 4)
    elif kind == "concat":
        model[name].data += model.pop(str(op[2])).data
    elif kind == "delete":
        del model[name]


async def apply_to_storage(
    storage: ChunkedSegmentStorage, model: dict[str, ModelSegment], op: tuple[object, ...]
) -> None:
    kind, name = op[0], str(op[1])
    if kind == "create":
        await storage.create(name)
    elif kind == "write":
        length = len(model[name].data) if name in model else 0
        await storage.write(name, length, pattern(int(str(op[2])), length))
    elif kind == "seal":
        await storage.seal(name)
    elif kind == "truncate":
        length = len(model[name].data) if name in model else 0
        await storage.truncate(name, length * int(str(op[2])) // 4)
    elif kind == "concat":
        await storage.concat(name, str(op[2]))
    elif kind == "delete":
        await storage.delete(name)


names = st.sampled_from(NAMES)
operations = st.one_of(
    st.tuples(st.just("create"), names),
    st.tuples(st.just("write"), names, st.integers(1, 700)),
    st.tuples(st.just("write_all"), st.integers(1, 120)),
    st.tuples(st.just("seal"), names),
    st.tuples(st.just("truncate"), names, st.integers(0, 4)),
    st.tuples(st.just("concat"), names, names),
    st.tuples(st.just("delete"), names),
    st.tuples(st.just("reopen"), st.just("")),
)


async def run(ops: list[tuple[object, ...]], supports_append: bool) -> None:
    chunks = InMemoryChunkStorage(supports_append=supports_append)

    async def reopen() -> ChunkedSegmentStorage:
        storage = ChunkedSegmentStorage(chunks, max_chunk_size=256, snapshot_every=3)
        await storage.open()
        return storage

    storage = await reopen()
    model: dict[str, ModelSegment] = {}
    for op in ops:
        if op[0] == "reopen":
            storage = await reopen()
            continue
        together = [("write", name, op[1]) for name in NAMES] if op[0] == "write_all" else [op]
        errors = [expected_error(model, one) for one in together]
        outcomes = await asyncio.gather(*(apply_to_storage(storage, model, one) for one in together),
                                        return_exceptions=True)
        for one, error, outcome in zip(together, errors, outcomes, strict=True):
            if isinstance(outcome, StorageError):
                assert error is not None and isinstance(outcome, error), (one, outcome)
            else:
                assert outcome is None, (one, outcome)
                assert error is None, (one, "should have raised", error)
                apply_to_model(model, one)
    referenced = {chunk.name for state in storage._journal.segments.values() for chunk in state.chunks}
    assert {n for n in await chunks.list() if "/data/" in n} == referenced
    storage = await reopen()
    for name in NAMES:
        assert await storage.exists(name) == (name in model)
    for name, segment in model.items():
        info = StorageSegmentInfo(name, len(segment.data), segment.start, segment.sealed)
        assert await storage.get_info(name) == info
        assert await storage.read(name, segment.start, len(segment.data)) == bytes(segment.data[segment.start :])
    referenced = sum(len(s.data) - s.start for s in model.values())
    stored = sum([await chunks.length(n) for n in await chunks.list() if "/data/" in n])
    assert stored >= referenced


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operations, max_size=40), supports_append=st.booleans())
def test_random_operations_match_the_model(ops: list[tuple[object, ...]], supports_append: bool) -> None:
    asyncio.run(run(ops, supports_append))
