"""The API reference builds: the pdoc command documented in README.md and docs/index.md runs and documents the
main client classes.

The command is read from README.md (so the documented command is the tested one), must appear verbatim in
docs/index.md too, and runs with its output directory moved to ``tmp_path``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 100.0
CLIENT_CLASSES = ("StreamManager", "EventStreamWriter", "EventStreamReader", "ReaderGroup", "KeyValueTable",
                  "ByteStreamWriter", "TransactionalEventStreamWriter")


def documented_command() -> str:
    commands = re.findall(r"^python3 -m pdoc -o docs/api .*$", (ROOT / "README.md").read_text(), re.M)
    assert len(commands) == 1, f"README.md should show the pdoc command once, found {commands}"
    assert commands[0] in (ROOT / "docs" / "index.md").read_text(), "docs/index.md shows another pdoc command"
    return commands[0]


def test_api_reference_documents_the_client(tmp_path: Path) -> None:
    args = shlex.split(documented_command())
    out = args.index("-o") + 1
    args[out] = str(tmp_path / "api")
    result = subprocess.run([sys.executable, *args[1:]], capture_output=True, text=True, cwd=ROOT,
                            timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    client_warnings = [line for line in result.stderr.splitlines() if "anabranch.client" in line]
    assert not client_warnings, "pdoc reports problems in the client package:\n" + "\n".join(client_warnings)
    page = tmp_path / "api" / "anabranch" / "client.html"
    assert page.is_file(), f"no client page among {sorted(p.name for p in (tmp_path / 'api').rglob('*.html'))}"
    html = page.read_text()
    missing = [name for name in CLIENT_CLASSES if f'id="{name}"' not in html]
    assert not missing, f"client classes missing from the API reference: {missing}"
    assert (tmp_path / "api" / "index.html").is_file()
