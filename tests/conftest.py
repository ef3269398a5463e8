"""Fixtures shared by every test: real server processes on free ports, each under a bounded wait."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from anabranch.testing.processes import SegmentStoreProcess, Standalone


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Standalone]:
    """A fresh ``anabranch standalone`` process for one test (killed afterwards)."""
    server = Standalone(tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def shared_standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    """One ``anabranch standalone`` process shared by tests that only create their own scopes and streams."""
    server = Standalone(tmp_path_factory.mktemp("shared") / "data")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def segmentstore(tmp_path: Path) -> Iterator[SegmentStoreProcess]:
    """A fresh ``anabranch segmentstore`` process for one test (killed afterwards)."""
    server = SegmentStoreProcess(tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        server.kill()
