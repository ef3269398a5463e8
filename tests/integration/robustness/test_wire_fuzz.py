"""The wire fuzzer in CI: a real ``anabranch segmentstore`` takes seeded fuzzed frames of every request type (field
values at their edges, mutated frames) for at most ~10 s per seed; after every batch the reference data is intact,
a fresh connection is answered, every container takes a write, no request ended in an unexpected exception and
resident memory stays under the bound. Longer runs: ``python3 scripts/fuzz_wire.py --frames 1000000``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from anabranch.testing.processes import HOST, SegmentStoreProcess
from anabranch.testing.wire_fuzz import WireFuzzer

pytestmark = pytest.mark.process
RSS_BOUND_MIB = 400.0
"""The server runs with a 32 MiB cache; at rest it takes about 60-80 MiB."""


@pytest.fixture
def fuzzed_store(tmp_path: Path) -> Iterator[SegmentStoreProcess]:
    server = SegmentStoreProcess(tmp_path / "data", None, "--cache-size", "32", "--tail-read-timeout", "0.5")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.parametrize("seed", [11, 12])
async def test_fuzzed_frames_fail_no_container_and_lose_nothing(fuzzed_store: SegmentStoreProcess, seed: int) -> None:
    fuzzer = WireFuzzer(HOST, fuzzed_store.segmentstore_port, fuzzed_store.pid, seed=seed,
                        rss_limit_mib=RSS_BOUND_MIB, log_path=fuzzed_store.log_path)
    await fuzzer.setup()
    figures = await fuzzer.run(60_000, check_every=5_000, time_limit=9)
    assert figures.frames_sent >= 4_000 and figures.checks >= 1
    assert figures.container_failures == 0 and figures.hangs == 0
    assert figures.replies > figures.connections, figures.as_dict()
    print(f"fuzz seed {seed}: {figures.as_dict()}")
