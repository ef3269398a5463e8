"""The official Pravega Python client over TLS against ``anabranch standalone --tls-cert --tls-key``.

The client (0.3.x: rustls 0.19 / webpki 0.21) accepts only DNS names as TLS server names, for the controller
URI and for the segment-store host ``getURI`` returns, so the server runs with ``--host localhost`` and the
certificate names ``localhost``. The CA certificate sits alone in the directory named by
``pravega_client_tls_cert_path``. Each scenario runs in its own process under a hard deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from anabranch.testing.processes import Standalone
from tests.unit.tls.certs import Pki, make_pki

pytestmark = [pytest.mark.compat, pytest.mark.process]

SCENARIOS = Path(__file__).with_name("official_scenarios.py")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_standalone(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Standalone]:
    server = Standalone(tmp_path_factory.mktemp("tls") / "data", None, None, "--host", "localhost",
                        "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--admin-port", "0")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def run_tls_scenario(uri: str, cert_dir: Path, deadline: float = 90.0,
                     **args: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, pravega_client_tls_cert_path=str(cert_dir))
    try:
        return subprocess.run([sys.executable, str(SCENARIOS), "tls_round_trip", uri, json.dumps(args)],
                              capture_output=True, text=True, timeout=deadline, env=env, cwd=cert_dir)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"official client TLS scenario still running after {deadline} s\n"
                    f"stdout: {exc.stdout!r}\nstderr: {str(exc.stderr)[-3000:]}")


def test_official_client_round_trip_over_tls(tls_standalone: Standalone, pki: Pki) -> None:
    scope = f"tls-{uuid.uuid4().hex[:8]}"
    done = run_tls_scenario(f"tls://localhost:{tls_standalone.controller_port}", pki.ca_dir, scope=scope, count=40)
    assert done.returncode == 0 and done.stdout.strip(), f"scenario failed:\n{done.stderr[-4000:]}"
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["created"] == [True, True]
    assert out["events"] == sorted(f"secret-{i}" for i in range(40))


def test_official_client_refuses_an_ip_address_for_the_segment_store(tmp_path: Path, pki: Pki) -> None:
    """Pins the limitation the docs describe: a ``getURI`` answer of 127.0.0.1 makes the client panic on its
    segment-store connection (webpki 0.21 takes DNS names only), even though the certificate names the IP."""
    server = Standalone(tmp_path / "data", None, None, "--tls-cert", str(pki.server_cert),
                        "--tls-key", str(pki.server_key), "--admin-port", "0")
    with server:
        done = run_tls_scenario(f"tls://localhost:{server.controller_port}", pki.ca_dir, deadline=60,
                                scope=f"ip-{uuid.uuid4().hex[:8]}", count=4)
    assert done.returncode != 0
    assert "get domain name: InvalidDNSNameError" in done.stderr
