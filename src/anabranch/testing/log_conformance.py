"""Conformance suite for Tier-1 ``DurableDataLog`` implementations (pytest, async tests).

Subclass ``DurableDataLogConformance`` in a test module named ``Test...`` and provide the fixture
``log_factory``: an async callable that returns an OPENED log over the same backing store on every
call (the second call simulates a restart; the previous instance is closed by the suite first).
Invariants checked: sequences start at 1 and strictly increase across restarts and truncation;
acked records come back in order, byte for byte; concurrent appends are all acked and kept in
sequence order; ``truncate`` never loses a later record; closed logs refuse appends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from anabranch.storage.interfaces import DurableDataLog, LogClosedError

LogFactory = Callable[[], Awaitable[DurableDataLog]]


async def read_all(log: DurableDataLog, after: int = 0) -> list[tuple[int, bytes]]:
    """Every record ``iter_records(after)`` yields, as a list."""
    return [record async for record in log.iter_records(after)]


async def _reopen(log: DurableDataLog, factory: LogFactory) -> DurableDataLog:
    await log.close()
    return await factory()


class DurableDataLogConformance:
    """Every ``DurableDataLog`` must pass these tests."""

    async def test_empty_log_has_no_records_and_starts_at_one(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        assert await read_all(log) == []
        assert await log.append(b"first") == 1
        await log.close()

    async def test_appends_get_increasing_sequences_and_read_back_in_order(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        payloads = [bytes([i]) * (i * 37 % 500) for i in range(50)]
        sequences = [await log.append(payload) for payload in payloads]
        assert sequences == list(range(1, 51))
        log = await _reopen(log, log_factory)
        assert await read_all(log) == list(zip(sequences, payloads, strict=True))
        await log.close()

    async def test_several_buffers_form_one_record(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        sequence = await log.append([b"ab", bytearray(b"cd"), memoryview(b"xxef")[2:]])
        log = await _reopen(log, log_factory)
        assert await read_all(log) == [(sequence, b"abcdef")]
        await log.close()

    async def test_empty_records_are_kept(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        sequences = [await log.append(b""), await log.append([]), await log.append(b"x")]
        log = await _reopen(log, log_factory)
        assert await read_all(log) == list(zip(sequences, [b"", b"", b"x"], strict=True))
        await log.close()

    async def test_concurrent_appends_are_all_acked_in_call_order(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        count = 2000
        payloads = [f"record-{i}".encode() * (1 + i % 7) for i in range(count)]
        sequences = await asyncio.wait_for(asyncio.gather(*(log.append(p) for p in payloads)), 60)
        assert sequences == sorted(sequences)
        assert len(set(sequences)) == count
        log = await _reopen(log, log_factory)
        assert await read_all(log) == list(zip(sequences, payloads, strict=True))
        await log.close()

    async def test_iter_records_after_skips_earlier_records(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        for i in range(10):
            await log.append(b"r%d" % i)
        log = await _reopen(log, log_factory)
        assert [seq for seq, _ in await read_all(log, after=6)] == [7, 8, 9, 10]
        assert await read_all(log, after=10) == []
        await log.close()

    async def test_truncate_keeps_later_records_and_sequences_continue(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        for i in range(20):
            await log.append(b"r%d" % i)
        await log.truncate(15)
        log = await _reopen(log, log_factory)
        records = await read_all(log, after=15)
        assert records == [(seq, b"r%d" % (seq - 1)) for seq in range(16, 21)]
        assert all(seq > 0 for seq, _ in await read_all(log))
        assert await log.append(b"next") == 21
        await log.close()

    async def test_truncating_everything_keeps_the_sequence(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        for i in range(5):
            await log.append(b"r%d" % i)
        await log.truncate(5)
        log = await _reopen(log, log_factory)
        assert await read_all(log, after=5) == []
        assert await log.append(b"after") == 6
        log = await _reopen(log, log_factory)
        assert await read_all(log, after=5) == [(6, b"after")]
        await log.close()

    async def test_sequences_continue_after_reopen(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        assert await log.append(b"a") == 1
        log = await _reopen(log, log_factory)
        assert await log.append(b"b") == 2
        log = await _reopen(log, log_factory)
        assert await read_all(log) == [(1, b"a"), (2, b"b")]
        await log.close()

    async def test_close_finishes_pending_appends_then_refuses_more(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        pending = [asyncio.ensure_future(log.append(b"p%d" % i)) for i in range(100)]
        await asyncio.sleep(0)
        await asyncio.wait_for(log.close(), 30)
        done = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 30)
        acked = {seq for seq in done if isinstance(seq, int)}
        assert all(isinstance(r, int | LogClosedError) for r in done)
        with pytest.raises(LogClosedError):
            await log.append(b"late")
        log = await log_factory()
        stored = {seq for seq, _ in await read_all(log)}
        assert acked <= stored
        await log.close()

    async def test_large_records_round_trip(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        payloads = [bytes(range(256)) * 1024 * (1 + i % 3) for i in range(8)]
        sequences = await asyncio.gather(*(log.append(memoryview(p)) for p in payloads))
        log = await _reopen(log, log_factory)
        assert await read_all(log) == list(zip(sequences, payloads, strict=True))
        await log.close()
