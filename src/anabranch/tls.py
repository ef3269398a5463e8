"""TLS settings shared by the servers and the client: certificate files in, SSL contexts and gRPC credentials out.

``ServerTls`` is a server's certificate chain and private key (PEM files). It checks both files when it is
built, so a bad path or a key that does not match the certificate fails at startup with a message naming the
file, never at the first connection. It gives the segment store an ``ssl.SSLContext`` and the controller
``grpc.ServerCredentials``. ``internal_client_context`` is what a process uses to reach its own TLS segment
store: it trusts exactly that certificate (pinned), whatever host name the server listens on.

Client side, a trust store is a PEM file or a directory of PEM files (the official client reads every file in
the directory named by ``pravega_client_tls_cert_path``); ``None`` means the system's CA certificates. Every
context needs TLS 1.2 or later. This module knows no protocol: callers wrap their own sockets and channels.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from anabranch.errors import ConfigError

MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2


class TlsConfigError(ConfigError):
    """A certificate, key or trust store cannot be used; the message names the file and what is wrong."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A server's certificate chain and private key, both PEM; build with :meth:`load`."""

    cert_file: Path
    key_file: Path
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def load(cls, cert_file: str | Path, key_file: str | Path) -> ServerTls:
        """Read and check the pair: the certificate must be PEM and the key must match it."""
        cert_path, key_path = Path(cert_file), Path(key_file)
        tls = cls(cert_path, key_path, _read(cert_path, "TLS certificate"), _read(key_path, "TLS private key"))
        tls.ssl_context()
        return tls

    @classmethod
    def from_options(cls, cert_file: str | Path | None, key_file: str | Path | None) -> ServerTls | None:
        """The pair from command-line options: both (TLS) or neither (plaintext, ``None``)."""
        if cert_file is None and key_file is None:
            return None
        if cert_file is None or key_file is None:
            raise TlsConfigError("TLS needs both --tls-cert and --tls-key (or neither for plaintext)")
        return cls.load(cert_file, key_file)

    def ssl_context(self) -> ssl.SSLContext:
        """A server context (TLS 1.2+) presenting this certificate; clients are not asked for one."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = MIN_TLS_VERSION
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except ssl.SSLError as exc:
            raise TlsConfigError(f"TLS certificate {self.cert_file} and key {self.key_file} are not a usable "
                                 f"PEM pair: {exc.reason or exc}") from exc
        except OSError as exc:
            raise TlsConfigError(f"cannot load TLS certificate {self.cert_file} / key {self.key_file}: {exc}") from exc
        return context

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials presenting this certificate (the gRPC core negotiates ALPN h2)."""
        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)])

    def internal_client_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this certificate (no host-name check: the key is pinned)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = MIN_TLS_VERSION
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        try:
            context.load_verify_locations(cadata=self.cert_pem.decode("ascii", errors="replace"))
        except ssl.SSLError as exc:
            raise TlsConfigError(f"TLS certificate {self.cert_file} holds no PEM certificate: {exc}") from exc
        return context


def _trust_files(trust_store: Path) -> list[Path]:
    if trust_store.is_dir():
        files = sorted(p for p in trust_store.iterdir() if p.is_file())
        if not files:
            raise TlsConfigError(f"trust store directory {trust_store} holds no certificate files")
        return files
    return [trust_store]


def read_trust_pem(trust_store: str | Path | None) -> bytes | None:
    """The CA certificates of ``trust_store`` (a PEM file or a directory of them) as one PEM blob; ``None`` for
    the system's CAs."""
    if trust_store is None:
        return None
    blobs = [_read(path, "trust store file") for path in _trust_files(Path(trust_store))]
    pem = b"\n".join(blob.strip() for blob in blobs) + b"\n"
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise TlsConfigError(f"trust store {trust_store} holds no PEM certificate")
    return pem


def client_ssl_context(trust_store: str | Path | None = None) -> ssl.SSLContext:
    """A client context (TLS 1.2+, certificate and host name verified) trusting only ``trust_store``'s CAs, or
    the system's CAs when it is ``None``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = MIN_TLS_VERSION
    pem = read_trust_pem(trust_store)
    if pem is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return context
    try:
        context.load_verify_locations(cadata=pem.decode("ascii", errors="replace"))
    except ssl.SSLError as exc:
        raise TlsConfigError(f"trust store {trust_store} is not valid PEM: {exc}") from exc
    return context
