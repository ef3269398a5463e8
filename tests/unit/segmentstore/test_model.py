"""Property test: random operation sequences (with flushes, crashes and clean restarts) against a
simple in-memory model of segments; after every step the store must agree with the model."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anabranch.protocol.commands import NULL_ATTRIBUTE_VALUE
from anabranch.segmentstore.errors import SegmentStoreError
from anabranch.segmentstore.store import SegmentStore

from .conftest import StoreEnv
from .test_api import read_all

NAMES = ["s/a/0.#epoch.0", "s/b/0.#epoch.0", "s/a/0.#epoch.0#transaction." + "1" * 32]
WRITERS = [uuid.UUID(int=1), uuid.UUID(int=2)]


@dataclass
class ModelSegment:
    data: bytearray = field(default_factory=bytearray)
    sealed: bool = False
    start: int = 0
    events: dict[uuid.UUID, int] = field(default_factory=dict)


operation = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(NAMES)),
    st.tuples(st.just("append"), st.sampled_from(NAMES), st.binary(min_size=0, max_size=300),
              st.sampled_from([None, *WRITERS]), st.integers(0, 5)),
    st.tuples(st.just("seal"), st.sampled_from(NAMES)),
    st.tuples(st.just("truncate"), st.sampled_from(NAMES), st.integers(0, 400)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("merge"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("merge_batch"), st.sampled_from(NAMES), st.lists(st.sampled_from(NAMES), max_size=3)),
    st.tuples(st.just("append"), st.sampled_from(NAMES),
              st.sampled_from([1, 7, 255]).map(lambda b: bytes([b]) * 1_100_000), st.none(), st.just(0)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("restart"), st.booleans()),
)


async def check(store: SegmentStore, model: dict[str, ModelSegment]) -> None:
    assert store.segment_names() == sorted(model)
    for name, segment in model.items():
        info = await store.get_info(name)
        assert (info.length, info.sealed, info.start_offset) == (len(segment.data), segment.sealed, segment.start)
        assert await read_all(store, name, segment.start) == bytes(segment.data[segment.start :])
        for writer in WRITERS:
            expected = segment.events.get(writer, NULL_ATTRIBUTE_VALUE)
            assert await store.get_writer_event_number(name, writer) == expected


def allowed(model: dict[str, ModelSegment], op: tuple) -> bool:
    kind, name = op[0], op[1]
    segment = model.get(name)
    if kind == "create":
        return segment is None
    if segment is None:
        return False
    if kind == "append":
        return not segment.sealed and (op[3] is None or op[3] not in segment.events or op[4] > 0)
    if kind == "seal":
        return not segment.sealed
    if kind == "truncate":
        return bool(segment.start <= op[2] <= len(segment.data))
    if kind == "merge_batch":
        return not segment.sealed and all(model[n].start == 0 for n in set(op[2]) if n in model and n != name)
    if kind == "merge":
        return not segment.sealed and op[2] in model and op[2] != name and model[op[2]].start == 0
    return True


async def step(env: StoreEnv, store: SegmentStore, model: dict[str, ModelSegment], op: tuple) -> SegmentStore:
    kind = op[0]
    if kind == "flush":
        await store.flush_to_storage()
        return store
    if kind == "restart":
        return await env.restart(crash=op[1])
    name = op[1]
    segment = model.get(name)
    try:
        if kind == "create":
            await store.create_segment(name)
            assert segment is None
            model[name] = ModelSegment()
        elif kind == "append":
            _, _, data, writer, bump = op
            event = None if writer is None else (segment.events.get(writer, 0) if segment else 0) + bump
            await store.append(name, data, writer_id=writer, event_number=event)
            assert allowed(model, op)
            assert segment is not None
            segment.data += data
            if writer is not None and event is not None:
                segment.events[writer] = event
        elif kind == "seal":
            assert await store.seal(name) == (len(segment.data) if segment else -1)
            assert segment is not None and not segment.sealed
            segment.sealed = True
        elif kind == "truncate":
            await store.truncate(name, op[2])
            assert segment is not None and segment.start <= op[2] <= len(segment.data)
            segment.start = op[2]
        elif kind == "delete":
            await store.delete(name)
            assert segment is not None
            del model[name]
        elif kind == "merge_batch":
            lengths = await store.merge_batch(name, op[2])
            assert allowed(model, op)
            assert segment is not None
            expected = []
            for source_name in op[2]:
                source = model.pop(source_name, None) if source_name != name else None
                if source is not None:
                    segment.data += source.data
                expected.append(len(segment.data))
            assert lengths == expected
        elif kind == "merge":
            source = model.get(op[2])
            length = await store.merge(name, op[2])
            assert allowed(model, op)
            assert segment is not None and source is not None
            segment.data += source.data
            assert length == len(segment.data)
            del model[op[2]]
    except SegmentStoreError:
        assert not allowed(model, op), f"{op} failed but the model allows it"
    return store


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=5, max_size=40), st.booleans())
def test_random_operations_match_model(ops: list[tuple], file_log: bool) -> None:
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as root:
            env = StoreEnv(Path(root), file_log=file_log)
            store = await env.open()
            model: dict[str, ModelSegment] = {}
            try:
                for op in ops:
                    store = await step(env, store, model, op)
                    await check(store, model)
                store = await env.restart(crash=True)
                await check(store, model)
            finally:
                await env.close()

    asyncio.run(scenario())
