"""The Python examples of docs/testing.md's embedded-server, pytest-fixture, assertion and official-client sections
run as written: scripts in their own interpreter, test files (those defining ``test_`` functions) by pytest in a
directory that configures nothing, as in a user's project (pytest-asyncio in strict mode)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "testing.md"
SECTIONS = ("## An embedded server", "## pytest fixtures", "## Checking exactly-once and order",
            "## Applications that use the official pravega client")


def examples() -> list[tuple[str, str]]:
    text = DOC.read_text()
    found = []
    for heading in SECTIONS:
        match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
        assert match, f"docs/testing.md has no '{heading}' section"
        blocks = re.findall(r"^```python\n(.*?)^```", match.group(1), re.S | re.M)
        assert blocks, f"'{heading}' has no python example"
        found.extend((f"{heading[3:]} #{number + 1}", block) for number, block in enumerate(blocks))
    return found


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
def test_example_runs(name: str, code: str, tmp_path: Path) -> None:
    if "pravega_client" in code and importlib.util.find_spec("pravega_client") is None:
        pytest.skip("the official pravega client is not installed")
    if re.search(r"^(async )?def test_", code, re.M):
        (tmp_path / "test_example.py").write_text(code)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"]
    else:
        command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False, cwd=tmp_path)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
