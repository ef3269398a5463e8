"""pytest fixtures for the mock clock and fault injection (loaded by the ``anabranch`` pytest plugin, or with
``-p anabranch.testing.fault_fixtures``):

- ``anabranch_clock``: a fresh ``ManualClock``;
- ``anabranch_clocked_standalone``: an embedded in-memory standalone whose every timer, and its clients', follow
  ``anabranch_clock``;
- ``anabranch_faults``: ``Faults`` for the test's ``anabranch_standalone`` (started, so the test's clients go
  through its proxy; closed after the test).

The async fixtures are declared with ``pytest_asyncio.fixture``, so they work in pytest-asyncio's strict mode too.
The servers are imported when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from anabranch.clock import ManualClock

if TYPE_CHECKING:
    from anabranch.embedded import Standalone
    from anabranch.testing.faults import Faults


@pytest.fixture
def anabranch_clock() -> ManualClock:
    """A manual clock that moves only when the test advances it."""
    return ManualClock()


@pytest_asyncio.fixture
async def anabranch_clocked_standalone(anabranch_clock: ManualClock) -> AsyncIterator[Standalone]:
    """An embedded in-memory standalone on ``anabranch_clock`` (``server.manager`` follows it too)."""
    from anabranch.embedded import Standalone

    async with Standalone(clock=anabranch_clock) as server:
        yield server


@pytest_asyncio.fixture
async def anabranch_faults(anabranch_standalone: Standalone) -> AsyncIterator[Faults]:
    """Fault injection into ``anabranch_standalone``."""
    from anabranch.testing.faults import Faults

    async with Faults(anabranch_standalone.segment_store, anabranch_standalone.controller) as faults:
        yield faults
