"""StreamManager's stream-level API through an embedded standalone: stream info, manual scaling, error families (the
pytest plugin's ``anabranch_standalone``: a fresh in-memory server per test, in the test's own event loop)."""

from __future__ import annotations

import uuid

import pytest

from anabranch.client import (
    AlreadyExistsError,
    ConflictError,
    NoSuchStreamError,
    NotFoundError,
    ScaleFailedError,
    ScalingPolicy,
    SealedError,
    StreamConfiguration,
    StreamCut,
    StreamManager,
    StreamSealedError,
    TableKey,
)
from anabranch.embedded import Standalone


def _scope() -> str:
    return f"api{uuid.uuid4().hex[:8]}"


async def test_stream_info_gives_head_and_tail_cuts_and_follows_seal(anabranch_standalone: Standalone) -> None:
    scope = _scope()
    async with StreamManager(anabranch_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, "s", StreamConfiguration(ScalingPolicy.fixed(2)))
        empty = await manager.get_stream_info(scope, "s")
        assert empty.head == StreamCut(scope, "s", {0: 0, 1: 0}) == empty.tail and not empty.sealed
        writer = manager.create_writer(scope, "s")
        for key in ("a", "b", "c", "d"):
            await writer.write_event(b"12345678", routing_key=key)
        await writer.flush()
        info = await manager.get_stream_info(scope, "s")
        assert info.head == empty.head
        assert sum(info.tail.positions.values()) == 4 * 16
        await manager.truncate_stream(info.tail)
        assert (await manager.get_stream_info(scope, "s")).head == info.tail
        await manager.seal_stream(scope, "s")
        assert (await manager.get_stream_info(scope, "s")).sealed


async def test_manual_scaling_through_the_stream_manager(anabranch_standalone: Standalone) -> None:
    scope = _scope()
    async with StreamManager(anabranch_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, "s")
        result = await manager.scale_stream(scope, "s", [0], [(0.0, 0.5), (0.5, 1.0)])
        current = await manager.get_current_segments(scope, "s")
        assert sorted(s.segment_id for s in current) == sorted(s.segment_id for s in result.new_segments)
        assert [(s.min_key, s.max_key) for s in sorted(current, key=lambda s: s.min_key)] == [(0.0, 0.5), (0.5, 1.0)]
        with pytest.raises(ScaleFailedError):
            await manager.scale_stream(scope, "s", [0], [(0.0, 1.0)])  # segment 0 is no longer current


async def test_errors_come_in_families_a_caller_can_catch(anabranch_standalone: Standalone) -> None:
    scope = _scope()
    async with StreamManager(anabranch_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        with pytest.raises(NotFoundError) as missing:
            await manager.get_stream_configuration(scope, "nothing")
        assert isinstance(missing.value, NoSuchStreamError)
        await manager.create_stream(scope, "s", StreamConfiguration(ScalingPolicy.fixed(1)))
        await manager.create_key_value_table(scope, "t")
        table = await manager.get_key_value_table(scope, "t")
        await table.put(TableKey(b"12345678"), b"v1")
        with pytest.raises(ConflictError):
            await table.put_if_absent(TableKey(b"12345678"), b"v2")
        await manager.seal_stream(scope, "s")
        with pytest.raises(SealedError) as sealed:
            await manager.create_byte_stream_writer(scope, "s")
        assert isinstance(sealed.value, StreamSealedError)
        assert issubclass(AlreadyExistsError, Exception)


async def test_byte_stream_reader_close(anabranch_standalone: Standalone) -> None:
    scope = _scope()
    async with StreamManager(anabranch_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, "b", StreamConfiguration(ScalingPolicy.fixed(1)))
        async with await manager.create_byte_stream_writer(scope, "b") as writer:
            await writer.write(b"hello")
        reader = await manager.create_byte_stream_reader(scope, "b")
        assert await reader.read(5) == b"hello"
        await reader.close()
        from anabranch.client import ClientClosedError

        with pytest.raises(ClientClosedError):
            await reader.read(1)
