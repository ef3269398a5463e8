"""README.md's quick start works as written: every shell command in it runs against a real standalone.

The commands are taken from the ```bash blocks of the "Quick start" section, so editing the README changes
what is tested. Set-up commands (the pip install, the test run) are checked for their shape only: running
them here would reinstall the package or recurse into the whole suite. ``anabranch standalone`` is started
through :class:`Standalone` on free ports (its documented defaults are checked against the command's own
options); every other ``anabranch`` command runs through ``bash`` with ``--controller`` pointing at it, and
the Python example runs with its controller URI replaced.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

from anabranch.cli.main import cli
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
COMMAND_TIMEOUT = 60.0
RUN_TESTS = "bash scripts/test"
STANDALONE = "bash scripts/standalone"
DEFAULT_URI = "tcp://127.0.0.1:9090"


def quick_start() -> str:
    text = README.read_text()
    match = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Quick start' section"
    return match.group(1)


def code_blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", section, re.S | re.M)


def shell_commands(section: str) -> list[str]:
    return [line.strip() for block in code_blocks(section, "bash") for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def with_controller(command: str, uri: str) -> str:
    """Append ``--controller uri`` to every ``anabranch`` invocation of a (possibly piped) command line."""
    parts = [part.strip() for part in command.split("|")]
    return " | ".join(f"{part} --controller {uri}" if part.startswith("anabranch ") else part for part in parts)


def run_shell(command: str) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=COMMAND_TIMEOUT, check=False)
    assert result.returncode == 0, f"{command!r} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def test_setup_commands_have_the_documented_shape() -> None:
    commands = shell_commands(quick_start())
    assert RUN_TESTS in commands and STANDALONE in commands
    standalone = (ROOT / "scripts" / "standalone").read_text()
    assert "pip install" in standalone and "anabranch standalone" in standalone
    tests = (ROOT / "scripts" / "test").read_text()
    assert "apt-get install" in tests and "pip install --quiet -e '.[dev]'" in tests and "pytest" in tests
    assert "bash scripts/test" in (ROOT / ".ci" / "run").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "dev" in extras


def test_standalone_defaults_match_the_readme() -> None:
    section = quick_start()
    command = cli.commands["standalone"]
    defaults = {param.name: param.default for param in command.params if isinstance(param, click.Option)}
    assert f"port {defaults['controller_port']}" in section
    assert f"port {defaults['segmentstore_port']}" in section
    assert f"`./{defaults['data_dir']}`" in section
    for option in ("controller", "scope create", "stream create", "write", "read"):
        group, _, sub = option.partition(" ")
        target = cli.commands[group]
        if sub:
            assert isinstance(target, click.Group)
            target = target.commands[sub]
        if option != "controller":
            uri = next(param.default for param in target.params if param.name == "controller")
            assert uri == DEFAULT_URI, f"anabranch {option} does not default to the standalone controller"


def test_every_quick_start_command_works(tmp_path: Path) -> None:
    section = quick_start()
    user_commands = [command for command in shell_commands(section)
                     if command not in (RUN_TESTS, STANDALONE)]
    assert user_commands, "the quick start shows no write and read"
    unknown = [command for command in user_commands
               if not all(part.strip().startswith(("anabranch ", "echo ")) for part in command.split("|"))]
    assert not unknown, f"quick-start commands this test does not know how to run: {unknown}"
    written = re.findall(r'^echo "([^"]*)" \| anabranch write ', "\n".join(user_commands), re.M)
    assert written, "the quick start writes nothing with echo | anabranch write"
    server = Standalone(tmp_path / "data")
    server.start()
    try:
        outputs = [run_shell(with_controller(command, server.controller_uri)) for command in user_commands]
        reads = [out.stdout for command, out in zip(user_commands, outputs, strict=True)
                 if command.startswith("anabranch read ")]
        assert reads, "the quick start reads nothing"
        for message in written:
            assert message in reads[-1].splitlines(), f"read printed {reads[-1]!r}, not {message!r}"

        python_examples = code_blocks(section, "python")
        assert python_examples, "the quick start has no Python example"
        for example in python_examples:
            assert DEFAULT_URI in example
            code = example.replace(DEFAULT_URI, server.controller_uri)
            result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    timeout=COMMAND_TIMEOUT, check=False)
            assert result.returncode == 0, f"the Python example failed:\n{result.stderr}"
    finally:
        server.kill()
