"""The Python examples of docs/testing.md's mock-clock and fault-injection sections run as written (each in its
own interpreter, against an embedded standalone)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "testing.md"
SECTIONS = ("## A mock clock", "## Fault injection")


def examples() -> list[tuple[str, str]]:
    text = DOC.read_text()
    found = []
    for heading in SECTIONS:
        match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
        assert match, f"docs/testing.md has no '{heading}' section"
        for number, block in enumerate(re.findall(r"^```python\n(.*?)^```", match.group(1), re.S | re.M)):
            found.append((f"{heading[3:]} #{number + 1}", block))
    return found


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
def test_example_runs(name: str, code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
