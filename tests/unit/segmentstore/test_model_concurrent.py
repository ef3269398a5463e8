"""Property test: groups of operations submitted concurrently must behave as if run one by one in
submission order (each is validated against the effect of the earlier, still queued ones)."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anabranch.protocol.commands import NULL_ATTRIBUTE_VALUE
from anabranch.segmentstore.errors import SegmentStoreError
from anabranch.segmentstore.store import SegmentStore

from .conftest import StoreEnv
from .test_model import ModelSegment, check

PARENT = "s/a/0.#epoch.0"
NAMES = [PARENT, PARENT + "#transaction." + "1" * 32, PARENT + "#transaction." + "2" * 32]
KEYS = [uuid.UUID(int=1), uuid.UUID(int=2)]

operation = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(NAMES)),
    st.tuples(st.just("append"), st.sampled_from(NAMES), st.binary(max_size=50), st.sampled_from([None, *KEYS]),
              st.integers(-1, 3)),
    st.tuples(st.just("conditional"), st.sampled_from(NAMES), st.binary(min_size=1, max_size=20),
              st.integers(0, 60)),
    st.tuples(st.just("seal"), st.sampled_from(NAMES)),
    st.tuples(st.just("truncate"), st.sampled_from(NAMES), st.integers(0, 60)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("merge"), st.just(PARENT), st.sampled_from(NAMES[1:])),
    st.tuples(st.just("attribute"), st.sampled_from(NAMES), st.sampled_from(KEYS), st.integers(0, 3),
              st.sampled_from([None, NULL_ATTRIBUTE_VALUE, 0, 1, 2])),
)


def expect(model: dict[str, ModelSegment], attributes: dict[str, dict[uuid.UUID, int]], op: tuple) -> Any:
    """Apply ``op`` to the model; return its result, or SegmentStoreError if the store must reject it."""
    kind, name = op[0], op[1]
    segment = model.get(name)
    if kind == "create":
        if segment is not None:
            return SegmentStoreError
        model[name] = ModelSegment()
        attributes[name] = {}
        return None
    if segment is None:
        return SegmentStoreError
    if kind in ("append", "conditional"):
        if segment.sealed:
            return SegmentStoreError
        if kind == "conditional":
            if op[3] != len(segment.data):
                return SegmentStoreError
        elif op[3] is not None:
            if attributes[name].get(op[3], NULL_ATTRIBUTE_VALUE) >= op[4]:
                return SegmentStoreError
            attributes[name][op[3]] = op[4]
        segment.data += op[2]
        return len(segment.data)
    if kind == "seal":
        if segment.sealed:
            return SegmentStoreError
        segment.sealed = True
        return len(segment.data)
    if kind == "truncate":
        if not segment.start <= op[2] <= len(segment.data):
            return SegmentStoreError
        segment.start = op[2]
        return None
    if kind == "delete":
        del model[name]
        del attributes[name]
        return None
    if kind == "merge":
        source = model.get(op[2])
        if segment.sealed or source is None or source.start > 0:
            return SegmentStoreError
        segment.data += source.data
        del model[op[2]]
        del attributes[op[2]]
        return len(segment.data)
    current = attributes[name].get(op[2], NULL_ATTRIBUTE_VALUE)
    if segment.sealed:
        return SegmentStoreError
    if op[4] is not None and current != op[4]:
        return False
    attributes[name][op[2]] = op[3]
    return True


def with_event_numbers(group: list[tuple], attributes: dict[str, dict[uuid.UUID, int]]) -> list[tuple]:
    """Turn each append's event-number step into a concrete event number, as a writer would number
    its events in submission order (a step <= 0 makes a duplicate or a step back)."""
    last = {name: dict(values) for name, values in attributes.items()}
    result = []
    for op in group:
        if op[0] == "append" and op[3] is not None:
            previous = last.get(op[1], {}).get(op[3], 0)
            event = max(previous, 0) + op[4]
            last.setdefault(op[1], {})[op[3]] = max(previous, event)
            op = (*op[:4], event)
        result.append(op)
    return result


async def run(store: SegmentStore, op: tuple) -> Any:
    kind, name = op[0], op[1]
    if kind == "create":
        return await store.create_segment(name)
    if kind == "append":
        event = None if op[3] is None else op[4]
        return (await store.append(name, op[2], writer_id=op[3], event_number=event)).new_length
    if kind == "conditional":
        return (await store.append(name, op[2], expected_offset=op[3])).new_length
    if kind == "seal":
        return await store.seal(name)
    if kind == "truncate":
        return await store.truncate(name, op[2])
    if kind == "delete":
        return await store.delete(name)
    if kind == "merge":
        return await store.merge(name, op[2])
    return await store.update_attributes(name, [(op[2], op[3], op[4])])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(operation, min_size=1, max_size=12), min_size=1, max_size=6), st.booleans())
def test_concurrent_groups_match_sequential_model(groups: list[list[tuple]], crash: bool) -> None:
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as root:
            env = StoreEnv(Path(root))
            store = await env.open()
            model: dict[str, ModelSegment] = {}
            attributes: dict[str, dict[uuid.UUID, int]] = {}
            try:
                for group in groups:
                    group = with_event_numbers(group, attributes)
                    calls = [run(store, op) for op in group]
                    expected = [expect(model, attributes, op) for op in group]
                    results = await asyncio.gather(*calls, return_exceptions=True)
                    for op, want, got in zip(group, expected, results, strict=True):
                        if want is SegmentStoreError:
                            assert isinstance(got, SegmentStoreError), f"{op} should fail, got {got!r}"
                        else:
                            assert got == want, f"{op}: expected {want!r}, got {got!r}"
                    for name, segment in model.items():
                        segment.events = {k: v for k, v in attributes[name].items()}
                    await check(store, model)
                    store = await env.restart(crash=crash)
                    await check(store, model)
            finally:
                await env.close()

    asyncio.run(scenario())
