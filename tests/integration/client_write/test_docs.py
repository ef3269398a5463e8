"""Every Python example in docs/client.md runs against a real ``anabranch standalone``."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process
DOC = Path(__file__).resolve().parents[3] / "docs" / "client.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    server = Standalone(tmp_path_factory.mktemp("docs") / "data")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_example_runs(index: int, docs_server: Standalone, tmp_path: Path) -> None:
    code = EXAMPLES[index].replace("tcp://127.0.0.1:9090", docs_server.controller_uri)
    script = tmp_path / f"example_{index}.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"example {index} failed:\n{code}\n{done.stdout}\n{done.stderr}"
