"""The ``anabranch`` pytest plugin as a user meets it: a project that installed anabranch and pytest-asyncio, wrote
``def test_my_app(anabranch_standalone): ...`` and configured nothing (pytest-asyncio's strict mode), or set
``asyncio_mode = "auto"``. Each run is a separate pytest process (``pytester``), with warnings turned into errors."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS_STRICT = '''
import pytest
from anabranch.client import ReaderGroupConfig, StreamManager
from anabranch.testing import assert_exactly_once, assert_per_key_order


async def app_writes(manager, scope, events):
    await manager.create_scope(scope)
    await manager.create_stream(scope, "orders")
    writer = manager.create_writer(scope, "orders")
    for event in events:
        await writer.write_event(event, routing_key=event[:2].decode())
    await writer.flush()
    await writer.close()


async def read(manager, scope, count):
    group = await manager.create_reader_group(scope, "check", ReaderGroupConfig.for_streams(scope, "orders"))
    reader = await group.create_reader("r")
    got = []
    while len(got) < count:
        read = await reader.read_next_event(timeout=5.0)
        assert read.event is not None, got
        got.append(read.event)
    await reader.close()
    return got


@pytest.mark.asyncio
async def test_my_app(anabranch_standalone):
    events = [b"k%d-%d" % (i % 3, i) for i in range(20)]
    await app_writes(anabranch_standalone.manager, "shop", events)
    got = await read(anabranch_standalone.manager, "shop", len(events))
    assert_exactly_once(events, got)
    assert_per_key_order(got, key=lambda e: e[:2], written=events)


@pytest.mark.asyncio
async def test_durable_restart(anabranch_durable_standalone):
    server = anabranch_durable_standalone
    await app_writes(server.manager, "shop", [b"k1-1", b"k1-2"])
    await server.restart()
    assert await read(server.manager, "shop", 2) == [b"k1-1", b"k1-2"]


def test_sync(anabranch_blocking_standalone):
    assert anabranch_blocking_standalone.create_scope("sync") is True


@pytest.mark.parametrize("scope", ["one", "two"])
@pytest.mark.asyncio
async def test_session_server_from_the_tests_loop(anabranch_standalone_session, scope):
    async with StreamManager(anabranch_standalone_session.client_config()) as manager:
        assert await manager.create_scope(scope) is True


def test_assertion_messages_name_the_first_bad_event():
    with pytest.raises(AssertionError, match="b'b'"):
        assert_exactly_once([b"a", b"b"], [b"a"])
    with pytest.raises(AssertionError, match="the first, b'a', 2 times"):
        assert_exactly_once([b"a"], [b"a", b"a"])
    with pytest.raises(AssertionError, match="routing key 'k' out of order: b'k1'"):
        assert_per_key_order([b"k2", b"k1"], key=lambda e: "k", written=[b"k1", b"k2"])
'''

USER_TESTS_AUTO = '''
async def test_my_app(anabranch_standalone):
    assert await anabranch_standalone.manager.create_scope("auto") is True
'''


def run_user_project(pytester: pytest.Pytester, source: str, ini: str = "") -> pytest.RunResult:
    pytester.makepyfile(test_user_app=source)
    pytester.makeini(f"[pytest]\n{ini}")
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", "-q", timeout=120)


def test_fixtures_in_a_project_that_configures_nothing(pytester: pytest.Pytester) -> None:
    result = run_user_project(pytester, USER_TESTS_STRICT)
    result.assert_outcomes(passed=6)
    assert "warning" not in result.stdout.str().lower(), result.stdout.str()


def test_fixtures_with_asyncio_mode_auto(pytester: pytest.Pytester) -> None:
    result = run_user_project(pytester, USER_TESTS_AUTO, "asyncio_mode = auto\n")
    result.assert_outcomes(passed=1)


def test_the_cluster_fixture_runs_or_says_what_is_missing(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # neither java nor nats-server on PATH
    monkeypatch.setattr("sys.executable", pytester.path / "python-without-nats")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_user_cluster="def test_c(anabranch_cluster):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "-q")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*anabranch_cluster: *"])
