"""The data directory's lock (``anabranch.datadir``): exclusive, names its holder, released with its holder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anabranch.datadir import LOCK_FILE, DataDirError, DataDirInUseError, lock_data_dir


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
