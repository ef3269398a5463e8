"""The example of docs/storage.md's JetStream section runs as written and prints what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.process, pytest.mark.cluster]

PAGE = Path(__file__).resolve().parents[3] / "docs" / "storage.md"
SECTION = "## Tier-1 in cluster mode: the JetStream log"


def section() -> str:
    match = re.search(rf"^{re.escape(SECTION)}\n(.*?)(?=^## )", PAGE.read_text(), re.S | re.M)
    assert match, f"docs/storage.md has no '{SECTION}' section"
    return match.group(1)


def test_the_fencing_example_runs_and_prints_what_the_page_says(tmp_path: Path) -> None:
    text = section()
    (example,) = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    promised = re.search(r"It prints (`[^`]+`), (`[^`]+`) and (`[^`]+`)\.", text)
    assert promised, "the page no longer says what the example prints"
    script = tmp_path / "example.py"
    script.write_text(example)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [line.strip("`") for line in promised.groups()]
