"""Server commands space out the cyclic collector's runs (``anabranch.gc_policy``); the thresholds are restored after
each test, because the test process is not a server."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from anabranch.cli.serving import run_server
from anabranch.gc_policy import OLDER_THRESHOLD, YOUNG_THRESHOLD, tune_for_server


@pytest.fixture(autouse=True)
def restore_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_tuning_raises_the_young_threshold() -> None:
    gc.set_threshold(700, 10, 10)
    tune_for_server()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
    assert gc.isenabled()


def test_a_server_command_runs_with_the_server_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    seen: list[tuple[int, int, int]] = []

    async def server() -> None:
        seen.append(gc.get_threshold())

    run_server(server(), "test server")
    assert seen == [(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)]
