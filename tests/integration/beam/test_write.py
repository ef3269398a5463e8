"""WriteToAnabranch against a real ``anabranch standalone``, on Beam's FnApiRunner.

Bundle retries are injected with ``FailOnce``: a DoFn fused with the write that raises on some elements the first
time it sees them (a marker file per element survives the failed attempt), after the write has already taken the
earlier elements of the bundle. The FnApiRunner fails the pipeline on a failed bundle, so the runner's retry is
played by running the pipeline again until it succeeds.

- exactly once: the failed attempts' transactions are never committed: every element is in the stream once;
- at least once (the control): the same injected failures leave duplicates;
- routing keys keep per-key order within a bundle's transaction;
- with a checkpoint name, finalized transactions are staged in the checkpoint record, not committed, until
  ``complete_run`` (aborted by ``recover`` if the run never completes).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from anabranch.beam import WriteToAnabranch
from anabranch.beam.checkpoint_store import CheckpointStore
from anabranch.beam.two_phase import begin_run, complete_run, staged
from anabranch.client import ClientConfig, ScalingPolicy, StreamConfiguration, StreamManager
from anabranch.client.controller_types import TxnState
from anabranch.model.stream_cut import StreamCut
from anabranch.testing.processes import Standalone

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


class FailOnce(beam.DoFn):  # type: ignore[misc]
    """Passes elements on; raises once for each element in ``fail_on`` (after the earlier ones went on)."""

    def __init__(self, marker_dir: Path, fail_on: frozenset[int]) -> None:
        self.marker_dir = marker_dir
        self.fail_on = fail_on

    def process(self, value: int) -> Iterator[int]:
        marker = self.marker_dir / f"failed-{value}"
        if value in self.fail_on and not marker.exists():
            marker.touch()
            raise RuntimeError(f"injected failure of the bundle holding {value}")
        yield value


@pytest.fixture
def server(shared_standalone: Standalone) -> Standalone:
    """The suite's shared standalone: these tests only use scopes of their own."""
    return shared_standalone


def new_stream(uri: str, segments: int = 3) -> tuple[str, str]:
    scope, stream = f"bw-{uuid.uuid4().hex[:8]}", "out"

    async def create() -> None:
        async with StreamManager(ClientConfig(uri)) as manager:
            await manager.create_scope(scope)
            await manager.create_stream(scope, stream, StreamConfiguration(ScalingPolicy.fixed(segments)))
    asyncio.run(create())
    return scope, stream


async def read_stream(uri: str, scope: str, stream: str) -> list[bytes]:
    """Every event of the stream, segment by segment."""
    async with StreamManager(ClientConfig(uri)) as manager:
        batch = manager.batch_client()
        return [e.event for r in await batch.list_segments(scope, stream)
                async for e in batch.read_segment(r)]


def run_until_success(build: Any, attempts: int = 5) -> int:
    """Runs the pipeline again after each failure (the runner's bundle retry); returns the attempts made."""
    for attempt in range(1, attempts + 1):
        try:
            with beam.Pipeline(runner=FnApiRunner()) as pipeline:
                build(pipeline)
            return attempt
        except Exception as exc:
            if "injected failure" not in str(exc):
                raise
    raise AssertionError(f"the pipeline still failed after {attempts} attempts")


def write_with_failures(uri: str, scope: str, stream: str, tmp_path: Path, exactly_once: bool) -> int:
    fail_on = frozenset({60, 140})

    def build(p: Any) -> None:
        (p | beam.Create(list(range(200)))
         | beam.ParDo(FailOnce(tmp_path, fail_on))
         | beam.Map(lambda v: f"event-{v}")
         | WriteToAnabranch(uri, scope, stream, routing_key=lambda e: e[-1], exactly_once=exactly_once))
    return run_until_success(build)


def test_exactly_once_write_under_bundle_retries_has_no_duplicates_and_no_loss(server: Standalone,
                                                                                tmp_path: Path) -> None:
    scope, stream = new_stream(server.controller_uri)
    attempts = write_with_failures(server.controller_uri, scope, stream, tmp_path, exactly_once=True)
    assert attempts == 3
    events = asyncio.run(read_stream(server.controller_uri, scope, stream))
    assert Counter(events) == Counter(f"event-{v}".encode() for v in range(200))
    by_key: dict[str, list[int]] = {}
    for e in events:  # per-key order: within one segment, a key's events in the order written
        by_key.setdefault(e.decode()[-1], []).append(int(e.decode().split("-")[1]))
    assert all(values == sorted(values) for values in by_key.values())


def test_at_least_once_write_under_bundle_retries_duplicates(server: Standalone, tmp_path: Path) -> None:
    scope, stream = new_stream(server.controller_uri)
    attempts = write_with_failures(server.controller_uri, scope, stream, tmp_path, exactly_once=False)
    assert attempts == 3
    counts = Counter(asyncio.run(read_stream(server.controller_uri, scope, stream)))
    assert set(counts) == {f"event-{v}".encode() for v in range(200)}
    assert max(counts.values()) > 1, "the injected retries should have written some events twice"


def test_checkpointed_write_stages_until_the_run_completes(server: Standalone, tmp_path: Path) -> None:
    uri = server.controller_uri
    scope, stream = new_stream(uri, segments=1)
    name = f"pipeline-{uuid.uuid4().hex[:6]}"

    def build(p: Any) -> None:
        (p | beam.Create([f"e{i}" for i in range(20)])
         | WriteToAnabranch(uri, scope, stream, checkpoint_name=name))

    async def staged_ids() -> list[uuid.UUID]:
        async with StreamManager(ClientConfig(uri)) as manager:
            record = await CheckpointStore(manager, scope).load(name)
            assert record is not None
            return [t for ids in staged(record).values() for t in ids]

    async def states(ids: list[uuid.UUID]) -> set[TxnState]:
        async with StreamManager(ClientConfig(uri)) as manager:
            return {await manager.controller.check_transaction_state(scope, stream, t) for t in ids}

    async def run_step(step: str) -> Any:
        async with StreamManager(ClientConfig(uri)) as manager:
            if step == "begin":
                return await begin_run(manager, scope, name, [(scope, stream)])
            return await complete_run(manager, scope, name, {(scope, stream): StreamCut(scope, stream, {0: 7})})

    # a run that never completes: its transaction stays staged, then the restart aborts it
    asyncio.run(run_step("begin"))
    run_until_success(build)
    first = asyncio.run(staged_ids())
    assert first and asyncio.run(states(first)) == {TxnState.OPEN}
    assert asyncio.run(read_stream(uri, scope, stream)) == []
    record, _ = asyncio.run(run_step("begin"))
    assert not staged(record) and asyncio.run(states(first)) <= {TxnState.ABORTING, TxnState.ABORTED}
    # a run that completes: staged → pending with the cut, then committed
    run_until_success(build)
    assert asyncio.run(run_step("complete")) >= 1
    assert sorted(asyncio.run(read_stream(uri, scope, stream))) == sorted(f"e{i}".encode() for i in range(20))

    async def final() -> Any:
        async with StreamManager(ClientConfig(uri)) as manager:
            return await CheckpointStore(manager, scope).load(name)
    record = asyncio.run(final())
    assert record.cut(scope, stream).positions == {0: 7} and not record.pending_txns and not staged(record)


def test_the_documented_write_runs(server: Standalone) -> None:
    """docs/beam.md's write example, pointed at this server and a new stream, writes its two events."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "beam.md").read_text()
    code = page.split("## Writing", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    documented = '"tcp://127.0.0.1:9090", "examples", "results"'
    assert documented in code
    scope, stream = new_stream(server.controller_uri)
    exec(compile(code.replace(documented, f'"{server.controller_uri}", "{scope}", "{stream}"'), "docs/beam.md",
                 "exec"), {})
    events = asyncio.run(read_stream(server.controller_uri, scope, stream))
    assert sorted((json.loads(e) for e in events), key=str) == [{"sensor": "s1", "value": 3.5},
                                                                 {"sensor": "s2", "value": 1.0}]
