"""No request content can fail a container: fields the log cannot encode are refused before anything is queued
or staged, and the container keeps serving (issue 10, cases 1 and 2 at the container level, without the wire
validation in front)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from anabranch.segmentstore.errors import InvalidRequestError, NoSuchSegmentError
from anabranch.segmentstore.store import SegmentStore, open_segment_store

SEG = "scope/stream/0.#epoch.0"


async def assert_serving(store: SegmentStore) -> None:
    """Every container answers a write and a read, and says it runs."""
    health = store.health()
    assert health.ready and not health.failed, health.as_dict()
    probe = f"probe/{uuid.uuid4().hex}/0.#epoch.0"
    for index in range(40):
        name = f"{probe}{index}"
        await store.create_segment(name)
        await store.append(name, b"ok")
        assert bytes((await store.read(name, 0, 10)).data) == b"ok"


async def test_unencodable_fields_are_refused_and_the_container_keeps_serving(tmp_path: Path) -> None:
    store = await open_segment_store(tmp_path, 2)
    try:
        await store.create_segment(SEG)
        await store.append(SEG, b"before")
        with pytest.raises(InvalidRequestError):
            await store.create_segment("n" * 70_000)
        with pytest.raises(InvalidRequestError):
            await store.create_segment("scope/stream/1.#epoch.0", scale_type=-1)
        with pytest.raises(InvalidRequestError):
            await store.create_segment("scope/stream/2.#epoch.0", target_rate=2**40)
        with pytest.raises(InvalidRequestError):
            await store.update_policy(SEG, -1, 0)
        writer = uuid.uuid4()
        with pytest.raises(InvalidRequestError):
            await store.update_attributes(SEG, [(writer, 2**64, None)])
        with pytest.raises(InvalidRequestError):
            await store.append(SEG, b"x", writer_id=writer, event_number=2**63)
        # nothing of the refused requests was staged: the names are free, the attribute unset, the length unchanged
        with pytest.raises(NoSuchSegmentError):
            await store.get_info("scope/stream/1.#epoch.0")
        assert await store.get_attribute(SEG, writer) == -(2**63)
        result = await store.append(SEG, b"after")
        assert result.new_length == len(b"beforeafter")
        await store.create_segment("scope/stream/1.#epoch.0", scale_type=1, target_rate=10)
        await assert_serving(store)
    finally:
        await store.close()
    reopened = await open_segment_store(tmp_path, 2)
    try:
        assert bytes((await reopened.read(SEG, 0, 100)).data) == b"beforeafter"
        await assert_serving(reopened)
    finally:
        await reopened.close()
