"""ServerTls, trust stores and the TLS command-line options: files are checked at startup with clear messages."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from click.testing import CliRunner

from anabranch.cli.main import cli
from anabranch.client.config import ClientConfig
from anabranch.tls import ServerTls, TlsConfigError, client_ssl_context, read_trust_pem
from tests.unit.tls.certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_neither_option_means_plaintext() -> None:
    assert ServerTls.from_options(None, None) is None


@pytest.mark.parametrize("which", ["cert", "key"])
def test_one_option_alone_is_refused(pki: Pki, which: str) -> None:
    cert, key = (pki.server_cert, None) if which == "cert" else (None, pki.server_key)
    with pytest.raises(TlsConfigError, match="both --tls-cert and --tls-key"):
        ServerTls.from_options(cert, key)


def test_pair_loads_and_builds_server_contexts(pki: Pki) -> None:
    tls = ServerTls.load(pki.server_cert, pki.server_key)
    context = tls.ssl_context()
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert tls.grpc_credentials() is not None
    assert tls.internal_client_context().check_hostname is False


def test_key_of_another_certificate_is_refused(pki: Pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    with pytest.raises(TlsConfigError, match="not a usable PEM pair"):
        ServerTls.load(pki.server_cert, other.server_key)


def test_missing_file_is_named(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match=r"missing\.pem"):
        ServerTls.load(tmp_path / "missing.pem", pki.server_key)


def test_trust_store_file_or_directory(pki: Pki) -> None:
    assert read_trust_pem(None) is None
    from_file = read_trust_pem(pki.ca_cert)
    from_dir = read_trust_pem(pki.ca_dir)
    assert from_file is not None and from_file == from_dir
    assert from_file.count(b"BEGIN CERTIFICATE") == 1
    assert client_ssl_context(pki.ca_dir).check_hostname is True


def test_trust_store_without_certificates_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TlsConfigError, match="holds no certificate files"):
        read_trust_pem(empty)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsConfigError, match="holds no PEM certificate"):
        client_ssl_context(junk)


def test_client_config_builds_a_context_only_for_tls(pki: Pki) -> None:
    assert ClientConfig("tcp://127.0.0.1:9090").ssl_context() is None
    for uri in ("tls://127.0.0.1:9090", "ssl://127.0.0.1:9090", "tcps://127.0.0.1:9090", "pravegas://h:1"):
        assert ClientConfig(uri, trust_store=str(pki.ca_dir)).ssl_context() is not None
    assert ClientConfig("tcp://127.0.0.1:9090", tls=True, trust_store=str(pki.ca_cert)).ssl_context() is not None


@pytest.mark.parametrize("command", [["standalone"], ["segmentstore"], ["controller", "--segmentstore", "h:1"]])
def test_commands_refuse_a_lone_tls_option(pki: Pki, command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--tls-cert", str(pki.server_cert)])
    assert result.exit_code == 2
    assert "both --tls-cert and --tls-key" in result.output


def test_commands_refuse_a_mismatched_pair(pki: Pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    result = CliRunner().invoke(cli, ["standalone", "--tls-cert", str(pki.server_cert),
                                      "--tls-key", str(other.server_key)])
    assert result.exit_code == 2
    assert "not a usable PEM pair" in result.output


def test_trust_store_falls_back_to_the_official_clients_variable(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("pravega_client_tls_cert_path", raising=False)
    assert ClientConfig("tls://127.0.0.1:9090").effective_trust_store is None
    monkeypatch.setenv("pravega_client_tls_cert_path", str(pki.ca_dir))
    assert ClientConfig("tls://127.0.0.1:9090").effective_trust_store == str(pki.ca_dir)
    assert ClientConfig("tls://127.0.0.1:9090", trust_store=str(pki.ca_cert)).effective_trust_store == str(pki.ca_cert)
