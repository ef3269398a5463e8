"""Fixtures of the testing-kit tests (see ``testing_kit_rig``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from testing_kit_rig import Clocked, clocked_standalone


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[Clocked]:
    async with clocked_standalone(tmp_path) as rig:
        yield rig
