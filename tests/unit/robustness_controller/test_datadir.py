"""The data directory (``anabranch.datadir``): its lock is exclusive, names its holder and goes with its holder; its
segment-container count is recorded once and never silently changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anabranch.datadir import (
    CONTAINERS_FILE,
    LOCK_FILE,
    ContainerCountMismatchError,
    DataDirError,
    DataDirInUseError,
    lock_data_dir,
    settle_container_count,
)


def test_a_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = lock_data_dir(tmp_path / "data")
    try:
        first.describe("anabranch segmentstore 127.0.0.1:4242")
        with pytest.raises(DataDirInUseError) as refused:
            lock_data_dir(tmp_path / "data")
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and "127.0.0.1:4242" in message and "--data-dir" in message
    finally:
        first.release()
    again = lock_data_dir(tmp_path / "data")
    again.release()
    assert (tmp_path / "data" / LOCK_FILE).read_text().startswith(f"pid {os.getpid()}, starting")


def test_unusable_directories(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DataDirError, match="is not a directory"):
        lock_data_dir(a_file)
    with pytest.raises(DataDirError, match="cannot create data directory"):
        lock_data_dir(a_file / "below")


def test_a_new_directory_records_its_container_count(tmp_path: Path) -> None:
    assert settle_container_count(tmp_path, None, 1) == 1
    assert (tmp_path / CONTAINERS_FILE).read_text() == "1\n"
    assert settle_container_count(tmp_path, None, 4) == 1  # the default only applies to a new directory
    assert settle_container_count(tmp_path, 1, 4) == 1
    (tmp_path / "other").mkdir()
    assert settle_container_count(tmp_path / "other", 6, 1) == 6


def test_another_count_is_refused_with_what_to_do(tmp_path: Path) -> None:
    settle_container_count(tmp_path, 4, 1)
    with pytest.raises(ContainerCountMismatchError, match=r"holds 4 segment containers; --containers 2 .*pass 4"):
        settle_container_count(tmp_path, 2, 1)
    assert (tmp_path / CONTAINERS_FILE).read_text() == "4\n"


def test_a_directory_from_before_the_record_counts_its_tier1_logs(tmp_path: Path) -> None:
    for container in range(4):
        (tmp_path / "tier1" / str(container)).mkdir(parents=True)
    assert settle_container_count(tmp_path, None, 1) == 4
    assert (tmp_path / CONTAINERS_FILE).read_text() == "4\n"
    with pytest.raises(ContainerCountMismatchError):
        settle_container_count(tmp_path, 1, 1)


def test_a_damaged_record_is_an_error_not_a_guess(tmp_path: Path) -> None:
    (tmp_path / CONTAINERS_FILE).write_text("four\n")
    with pytest.raises(DataDirError, match="should hold a positive container count"):
        settle_container_count(tmp_path, None, 1)
