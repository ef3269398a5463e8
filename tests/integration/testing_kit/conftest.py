"""Fixtures of the testing-kit tests (see ``testing_kit_rig``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from testing_kit_rig import Clocked, clocked_standalone

from anabranch.clock import SYSTEM_CLOCK
from anabranch.testing.faults import Faults


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[Clocked]:
    async with clocked_standalone(tmp_path) as rig:
        yield rig


@pytest.fixture
async def faulty(tmp_path: Path) -> AsyncIterator[tuple[Clocked, Faults]]:
    """A standalone on the system clock with fault injection started (clients connect through its proxy)."""
    async with clocked_standalone(tmp_path, SYSTEM_CLOCK) as rig, Faults(rig.segment_store, rig.controller) as faults:
        yield rig, faults
