"""Every user command through ``bash`` against a real ``anabranch standalone`` (controller found through
``ANABRANCH_CONTROLLER``): scopes, streams, reader groups, key-value tables; ``--json``, plain lines into a
pipe, exit codes (missing thing = 1, usage = 2, Ctrl-C = 130), ``scope delete`` naming what blocks it,
``stream create`` naming ignored flags, ``stream describe`` finding the admin endpoint by itself."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from anabranch.cli import describe
from anabranch.cli.main import cli
from anabranch.testing.processes import HOST, Standalone, free_port, wait_for_port

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    admin_port = free_port()
    process = Standalone(tmp_path_factory.mktemp("cli") / "data", None, None, "--admin-port", str(admin_port))
    process.admin_port = admin_port  # type: ignore[attr-defined]
    process.start()
    try:
        wait_for_port(HOST, admin_port, 30, process.process)
        yield process
    finally:
        process.kill()


def sh(server: Standalone, command: str, expect: int = 0) -> Result:
    """``anabranch <command>`` in this process (click's runner; stdout is not a terminal, so lists print plain
    lines), with the controller given only by ``ANABRANCH_CONTROLLER``."""
    env = {"ANABRANCH_CONTROLLER": server.controller_uri, "ANABRANCH_ADMIN": ""}
    result = CliRunner(env=env).invoke(cli, shlex.split(command))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == expect, f"{command} exited {result.exit_code}:\n{result.stdout}\n{result.stderr}"
    return result


def bash(server: Standalone, command: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """``anabranch <command>`` as a real process through bash (exit status and streams as a shell sees them)."""
    env = {**os.environ, "ANABRANCH_CONTROLLER": server.controller_uri, "ANABRANCH_ADMIN": ""}
    script = f"{shlex.quote(sys.executable)} -m anabranch {command}"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=90, env=env)
    assert result.returncode == expect, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_through_bash(server: Standalone) -> None:
    bash(server, "scope create shell")
    assert "shell" in bash(server, "scope list | grep -x shell").stdout.split()
    assert "does not exist" in bash(server, "scope delete nowhere", expect=1).stderr
    assert bash(server, "stream create no-slash", expect=2).returncode == 2


def test_scopes_and_streams(server: Standalone) -> None:
    assert sh(server, "scope create ops").stdout.strip() == "scope ops created"
    assert "ops" in sh(server, "scope list").stdout.splitlines()
    assert "ops" in json.loads(sh(server, "scope list --json").stdout)
    sh(server, "stream create ops/events --segments 2")
    again = sh(server, "stream create ops/events --segments 3 --tag x").stdout
    assert "already exists" in again and "--segments" in again and "--tag" in again
    assert sh(server, "stream create ops/events").stdout.strip() == "stream ops/events already exists"
    assert sh(server, "stream list ops").stdout.splitlines() == ["events\t2"]
    assert json.loads(sh(server, "stream list ops --json").stdout) == [{"stream": "events", "active_segments": 2}]
    sh(server, "write ops/events a b c --key k")
    described = json.loads(sh(server, "stream describe ops/events --json").stdout)
    assert described["total_bytes"] > 0 and len(described["segments"]) == 2

    blocked = sh(server, "scope delete ops", expect=1)
    assert "events" in blocked.stderr and "not empty" in blocked.stderr
    assert "does not exist" in sh(server, "stream delete ops/none --seal", expect=1).stderr
    assert "does not exist" in sh(server, "stream describe ops/none", expect=1).stderr


def test_reader_groups(server: Standalone) -> None:
    sh(server, "scope create rg")
    sh(server, "stream create rg/s --segments 2")
    sh(server, "write rg/s one two three four")
    sh(server, "readergroup create rg/g --stream s")
    assert sh(server, "readergroup list rg").stdout.splitlines() == ["g\trg/s"]
    assert json.loads(sh(server, "readergroup list rg --json").stdout) == [{"group": "g", "streams": ["rg/s"]}]
    d = json.loads(sh(server, "readergroup describe rg/g --events --json").stdout)
    assert d["streams"] == ["rg/s"] and d["readers"] == [] and len(d["unassigned"]) == 2
    assert d["lag_events"] == 4 and d["lag_bytes"] > 0
    assert "lag" in sh(server, "readergroup describe rg/g").stdout
    assert "starting cuts" in sh(server, "readergroup reset rg/g").stdout
    assert "no completed checkpoint" in sh(server, "readergroup reset rg/g --checkpoint nope", expect=1).stderr
    assert "deleted" in sh(server, "readergroup delete rg/g").stdout
    assert "does not exist" in sh(server, "readergroup describe rg/g", expect=1).stderr
    assert "does not exist" in sh(server, "readergroup delete rg/g", expect=1).stderr


def test_key_value_tables(server: Standalone) -> None:
    sh(server, "scope create kv")
    assert "created" in sh(server, "kvt create kv/t --partitions 2 --key-length 4").stdout
    assert sh(server, "kvt list kv").stdout.splitlines() == ["t"]
    assert json.loads(sh(server, "kvt list kv --json").stdout) == ["t"]
    assert "version" in sh(server, "kvt put kv/t key1 hello").stdout
    sh(server, "kvt put kv/t ab world --pad")
    assert sh(server, "kvt get kv/t key1").stdout.strip() == "hello"
    assert json.loads(sh(server, "kvt get kv/t ab --pad --json").stdout)["value"] == "world"
    entries = json.loads(sh(server, "kvt get kv/t --json").stdout)
    assert sorted((e["key"], e["value"]) for e in entries) == [("ab", "world"), ("key1", "hello")]
    assert "4-byte primary key" in sh(server, "kvt put kv/t toolong x", expect=1).stderr
    assert "is not in" in sh(server, "kvt get kv/t none --pad", expect=1).stderr
    assert "deleted" in sh(server, "kvt delete kv/t key1").stdout
    assert "is not in" in sh(server, "kvt get kv/t key1", expect=1).stderr
    blocked = sh(server, "scope delete kv", expect=1).stderr
    assert "key-value tables: t" in blocked
    assert "deleted" in sh(server, "kvt delete kv/t").stdout
    assert "does not exist" in sh(server, "kvt delete kv/t", expect=1).stderr
    assert "does not exist" in sh(server, "kvt get kv/t key1", expect=1).stderr


def test_describe_finds_the_admin_endpoint(server: Standalone, monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin endpoint next to the controller (here on the fixture's admin port instead of 9091) is used by
    ``stream describe`` only when it belongs to that controller; it adds epoch reasons."""
    monkeypatch.setattr(describe, "DEFAULT_ADMIN_PORT", server.admin_port)
    assert describe.admin_url_for(server.controller_uri) == f"http://{HOST}:{server.admin_port}"
    assert describe.admin_url_for(f"tcp://{HOST}:1") is None
    sh(server, "scope create d")
    sh(server, "stream create d/s")
    monkeypatch.delenv("ANABRANCH_ADMIN", raising=False)
    result = CliRunner().invoke(cli, ["stream", "describe", "d/s", "--json", "--controller", server.controller_uri])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["epochs"][0]["reason"] == "created"  # only the admin endpoint knows reasons
    monkeypatch.setattr(describe, "DEFAULT_ADMIN_PORT", 1)
    plain = json.loads(sh(server, "stream describe d/s --json").stdout)  # no admin endpoint: the public APIs
    assert plain["epochs"][0]["reason"] is None


def test_ctrl_c_exits_130(server: Standalone) -> None:
    env = {**os.environ, "ANABRANCH_CONTROLLER": server.controller_uri}
    sh(server, "scope create cc")
    sh(server, "stream create cc/s")
    reader = subprocess.Popen([sys.executable, "-m", "anabranch", "read", "cc/s"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and reader.poll() is None:
            listing = sh(server, "readergroup list cc").stdout
            if listing.strip():
                break
            time.sleep(0.2)
        reader.send_signal(signal.SIGINT)
        _out, err = reader.communicate(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 130, err
    assert "Traceback" not in err


def test_bench_against_a_live_server_removes_what_it_created(server: Standalone) -> None:
    before = json.loads(sh(server, "scope list --json").stdout)
    wrote = sh(server, "bench write --events 400 --segments 2 --rate 200 --latency-seconds 0.2 --json "
                       f"--controller {server.controller_uri}")
    assert json.loads(wrote.stdout.strip().splitlines()[-1])["events"] == 400
    read = sh(server, f"bench read --events 300 --json --controller {server.controller_uri}")
    assert json.loads(read.stdout.strip().splitlines()[-1])["events"] == 300
    assert json.loads(sh(server, "scope list --json").stdout) == before
