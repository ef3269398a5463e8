"""StreamManager, the blocking facade and the user CLI against a real ``anabranch standalone``."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from client_write_helpers import segment_bytes, split_events

from anabranch.cli.main import cli
from anabranch.client import (
    NoSuchScopeError,
    RetentionPolicy,
    ScalingPolicy,
    ScopeNotEmptyError,
    StreamConfiguration,
    StreamCut,
    StreamManager,
    StreamNotSealedError,
    connect,
)
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process


async def test_scopes_and_streams_lifecycle(shared_standalone: Standalone) -> None:
    scope = f"m{uuid.uuid4().hex[:8]}"
    async with StreamManager(shared_standalone.controller_uri) as manager:
        assert await manager.create_scope(scope)
        assert not await manager.create_scope(scope)
        assert await manager.scope_exists(scope)
        assert scope in [s async for s in manager.list_scopes()]
        config = StreamConfiguration(ScalingPolicy.by_event_rate(100, 2, 2), RetentionPolicy.by_size(1 << 20),
                                     tags=("red", "blue"))
        assert await manager.create_stream(scope, "a", config)
        assert not await manager.create_stream(scope, "a")
        for i in range(30):
            await manager.create_stream(scope, f"s{i}", StreamConfiguration(tags=("many",)))
        names = [s async for s in manager.list_streams(scope)]
        assert sorted(names) == sorted(["a", *(f"s{i}" for i in range(30))])
        assert [s async for s in manager.list_streams(scope, tag="red")] == ["a"]
        stored = await manager.get_stream_configuration(scope, "a")
        assert stored.scaling == config.scaling and set(stored.tags) == {"red", "blue"}
        await manager.update_stream(scope, "a", StreamConfiguration(ScalingPolicy.fixed(2), tags=("green",)))
        assert (await manager.get_stream_configuration(scope, "a")).tags == ("green",)
        assert len(await manager.get_current_segments(scope, "a")) == 2
        with pytest.raises(ScopeNotEmptyError):
            await manager.delete_scope(scope)
        with pytest.raises(StreamNotSealedError):
            await manager.delete_stream(scope, "a")
        with pytest.raises(NoSuchScopeError):
            await manager.create_stream(f"missing{scope}", "x")
        for name in names:
            await manager.seal_stream(scope, name)
            assert await manager.delete_stream(scope, name)
        assert not await manager.delete_stream(scope, "a")
        assert await manager.delete_scope(scope)


async def test_truncate_at_a_stream_cut(shared_standalone: Standalone) -> None:
    scope = f"c{uuid.uuid4().hex[:8]}"
    async with StreamManager(shared_standalone.controller_uri) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, "t")
        writer = manager.create_writer(scope, "t")
        for i in range(10):
            await writer.write_event(f"e{i}")
        await writer.flush()
        segment = f"{scope}/t/0.#epoch.0"
        cut_at = len(await segment_bytes(manager, segment)) // 2
        await manager.truncate_stream(StreamCut(scope, "t", {0: cut_at}))
        head = await manager.get_head_stream_cut(scope, "t")
        assert dict(head.positions) == {0: cut_at}
        assert split_events(await segment_bytes(manager, segment)) == [f"e{i}".encode() for i in range(5, 10)]


def test_blocking_facade(shared_standalone: Standalone) -> None:
    scope = f"f{uuid.uuid4().hex[:8]}"
    with connect(shared_standalone.controller_uri) as manager:
        assert manager.create_scope(scope)
        assert manager.create_stream(scope, "s")
        assert "s" in manager.list_streams(scope)
        writer = manager.create_writer(scope, "s")
        ack = writer.write_event("hello", "key")
        writer.flush()
        assert ack.result(timeout=10) is None


def test_cli_scope_stream_write(shared_standalone: Standalone) -> None:
    scope = f"cli{uuid.uuid4().hex[:8]}"
    uri = ["--controller", shared_standalone.controller_uri]
    runner = CliRunner()

    def ok(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(cli, [*args, *uri], input=stdin, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "created" in ok("scope", "create", scope)
    assert scope in ok("scope", "list")
    assert "created" in ok("stream", "create", f"{scope}/s", "--segments", "3", "--tag", "t1")
    assert "s" in ok("stream", "list", scope)
    ok("write", f"{scope}/s", "one", "two", "--key", "k")
    ok("write", f"{scope}/s", stdin="three\nfour\n")
    assert "truncated" in ok("stream", "truncate", f"{scope}/s", "--to-tail")
    ok("stream", "seal", f"{scope}/s")
    assert "deleted" in ok("stream", "delete", f"{scope}/s")
    assert "deleted" in ok("scope", "delete", scope)
    failed = runner.invoke(cli, ["stream", "create", "nosuchscope-x/s", *uri])
    assert failed.exit_code == 1 and "does not exist" in failed.output


def test_bench_write_and_read_print_one_json_line(shared_standalone: Standalone) -> None:
    runner = CliRunner()
    common = ["--events", "3000", "--segments", "2", "--json", "--controller", shared_standalone.controller_uri]
    wrote = runner.invoke(cli, ["bench", "write", *common, "--rate", "500", "--latency-seconds", "0.2"],
                          catch_exceptions=False)
    assert wrote.exit_code == 0, wrote.output
    figures = json.loads(wrote.output.strip().splitlines()[-1])
    assert figures["events"] == 3000 and figures["events_per_s"] > 0 and figures["e2e_p99_ms"] > 0
    read = runner.invoke(cli, ["bench", "read", *common, "--writers", "2"], catch_exceptions=False)
    assert read.exit_code == 0, read.output
    assert json.loads(read.output.strip().splitlines()[-1])["events"] == 3000


def test_blocking_facade_wraps_reader_groups_and_byte_streams(shared_standalone: Standalone) -> None:
    from anabranch.client import ReaderGroupConfig, StringSerializer

    scope = f"g{uuid.uuid4().hex[:8]}"
    with connect(shared_standalone.controller_uri) as manager:
        manager.create_scope(scope)
        manager.create_stream(scope, "s")
        writer = manager.create_writer(scope, "s")
        for i in range(5):
            writer.write_event(f"e{i}")
        writer.flush()
        group = manager.create_reader_group(scope, "g", ReaderGroupConfig.for_streams(scope, "s"))
        reader = group.create_reader("r1", StringSerializer())
        events: list[str] = []
        while len(events) < 5:
            read = reader.read_next_event(5.0)
            if read.event is not None:
                events.append(read.event)
        assert events == [f"e{i}" for i in range(5)]
        reader.close()
        manager.create_stream(scope, "b")
        bytes_out = manager.create_byte_stream_writer(scope, "b")
        bytes_out.write(b"abc")
        bytes_out.flush()
        assert manager.create_byte_stream_reader(scope, "b").read_exactly(3) == b"abc"
