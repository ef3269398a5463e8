"""Client settings and stream configuration values.

Owns ``ClientConfig`` (how to reach and talk to the controller and segment stores, writer
batching limits, retry policy). The stream configuration values a ``StreamManager`` sends
(``StreamConfiguration``, ``ScalingPolicy``, ``RetentionPolicy``) live in ``anabranch.model.stream_config``
and are importable from here too.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from anabranch.clock import SYSTEM_CLOCK, Clock
from anabranch.errors import ConfigError
from anabranch.model.stream_config import UNBOUNDED as UNBOUNDED
from anabranch.model.stream_config import RetentionPolicy as RetentionPolicy
from anabranch.model.stream_config import RetentionType as RetentionType
from anabranch.model.stream_config import ScaleType as ScaleType
from anabranch.model.stream_config import ScalingPolicy as ScalingPolicy
from anabranch.model.stream_config import StreamConfiguration as StreamConfiguration
from anabranch.retry import DEFAULT_BUDGET, RetryPolicy
from anabranch.tls import client_ssl_context

AUTH_METHOD_ENV = "pravega_client_auth_method"
AUTH_USERNAME_ENV = "pravega_client_auth_username"
AUTH_PASSWORD_ENV = "pravega_client_auth_password"
AUTH_TOKEN_ENV = "pravega_client_auth_token"
"""The environment variables the official (Rust) client reads its credentials from; ours reads them too."""
TRUST_STORE_ENV = "pravega_client_tls_cert_path"
"""Environment variable naming the CA certificates when ``trust_store`` is not set (as for the official client)."""
TLS_SCHEMES = frozenset({"tls", "ssl", "tcps", "pravegas"})
PLAIN_SCHEMES = frozenset({"tcp", "pravega", ""})
MAX_EVENT_SIZE = 8 * 1024 * 1024
"""Largest event sent in one append; larger ones go through a transient segment."""
MAX_BLOCK_EVENTS = 100_000
"""Most events one append block may hold (``max_block_events``); the official Rust client stops at 500."""
MAX_BLOCK_BYTES = 8 * 1024 * 1024
DEFAULT_BLOCK_EVENTS = 10_000
DEFAULT_BLOCK_BYTES = 1024 * 1024
"""Under a flood, blocks fill up to these limits: large enough that the segment store's per-block work stays
small beside its per-byte work, small enough to keep several blocks in flight (see docs/performance.md)."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How the client reaches the controller and behaves on the data path.

    ``controller_uri`` is ``tcp://host:port`` (plaintext) or ``tls://host:port`` (also ``ssl``,
    ``tcps``, ``pravegas``), or a bare ``host:port``. TLS (the scheme or ``tls=True``) covers the controller
    channel and every segment-store connection; ``trust_store`` is a PEM file or a directory of PEM files
    holding the CA certificates to trust (``None``: the path in env ``pravega_client_tls_cert_path`` if set,
    as for the official client, else the system's CAs). Every retry (controller calls, segment-store requests,
    writer reconnects) backs off exponentially with jitter from ``retry_initial_delay`` up to ``retry_max_delay``
    and gives up after ``retry_budget`` seconds (``retry_attempts``, if set, also caps the attempts).
    Credentials (servers started with ``--auth``): ``auth_token`` is the full value of the ``authorization``
    header, e.g. ``"Basic dXNlcjpwYXNz"`` or ``"Bearer <jwt>"``; or ``username`` and ``password`` (Basic); or,
    when neither is set, the official client's environment variables ``pravega_client_auth_method`` (``Basic``)
    with ``pravega_client_auth_username``/``_password`` (or ``pravega_client_auth_token``). See ``authorization``.
    """

    controller_uri: str = "tcp://127.0.0.1:9090"
    tls: bool = False
    trust_store: str | None = None
    auth_token: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    retry_attempts: int | None = None
    retry_initial_delay: float = 0.05
    retry_multiplier: float = 2.0
    retry_max_delay: float = 2.0
    retry_budget: float = DEFAULT_BUDGET
    max_block_events: int = DEFAULT_BLOCK_EVENTS
    max_block_bytes: int = DEFAULT_BLOCK_BYTES
    linger: float = 0.001
    """Longest an event waits in a block that is not full while ``max_inflight_blocks`` blocks await their acks
    (adaptive batching: while the window has room, a block goes out as soon as the application yields)."""
    max_inflight_blocks: int = 8
    txn_lease_ms: int = 90_000
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False, repr=False)
    """Whose time every client timer follows: retries and backoff, reader-group refreshes, read timeouts,
    transaction pings, automatic checkpoints, token renewal (a ``ManualClock`` in tests; see docs/testing.md)."""

    def __post_init__(self) -> None:
        scheme = self.scheme
        if scheme not in TLS_SCHEMES | PLAIN_SCHEMES:
            raise ConfigError(f"controller_uri {self.controller_uri!r}: unknown scheme {scheme!r}; use tcp:// or tls://")
        if self.controller_port <= 0:
            raise ConfigError(f"controller_uri {self.controller_uri!r} needs a port, e.g. tcp://127.0.0.1:9090")
        if not 0 < self.max_block_events <= MAX_BLOCK_EVENTS:
            raise ConfigError(f"max_block_events must be in 1..{MAX_BLOCK_EVENTS}")
        if not 0 < self.max_block_bytes <= MAX_BLOCK_BYTES:
            raise ConfigError(f"max_block_bytes must be in 1..{MAX_BLOCK_BYTES}")
        if (self.username is None) != (self.password is None):
            raise ConfigError("set both username and password, or neither")
        if self.auth_token is not None and self.username is not None:
            raise ConfigError("set auth_token or username/password, not both")
        if self.max_inflight_blocks < 1:
            raise ConfigError("max_inflight_blocks must be at least 1")
        self.retry_policy  # noqa: B018 - validates the retry settings
        if not 10_000 <= self.txn_lease_ms <= 600_000:
            raise ConfigError("txn_lease_ms must be within 10000..600000 (the controller's lease bounds)")

    @property
    def authorization(self) -> str | None:
        """The ``authorization`` header sent with every controller call, or None (no credentials)."""
        if self.auth_token is not None:
            return self.auth_token
        if self.username is not None and self.password is not None:
            return basic_credentials(self.username, self.password)
        return credentials_from_env(os.environ)

    @property
    def retry_policy(self) -> RetryPolicy:
        """How every retry loop of this client backs off: exponential with jitter, for ``retry_budget`` seconds
        (and at most ``retry_attempts`` attempts when set)."""
        return RetryPolicy(self.retry_initial_delay, self.retry_multiplier, self.retry_max_delay, self.retry_budget,
                           self.retry_attempts, clock=self.clock)

    @property
    def _parts(self) -> tuple[str, str]:
        uri = self.controller_uri
        if "://" not in uri:
            return "", uri
        scheme, rest = uri.split("://", 1)
        return scheme.lower(), rest

    @property
    def scheme(self) -> str:
        return self._parts[0]

    @property
    def use_tls(self) -> bool:
        return self.tls or self.scheme in TLS_SCHEMES

    @property
    def effective_trust_store(self) -> str | None:
        """``trust_store``, else the path in env ``pravega_client_tls_cert_path``, else None (system CAs)."""
        return self.trust_store or os.environ.get(TRUST_STORE_ENV) or None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context for segment-store connections, or ``None`` without TLS."""
        return client_ssl_context(self.effective_trust_store) if self.use_tls else None

    @property
    def controller_host(self) -> str:
        return urlsplit("//" + self._parts[1].split(",")[0]).hostname or "127.0.0.1"

    @property
    def controller_port(self) -> int:
        try:
            return urlsplit("//" + self._parts[1].split(",")[0]).port or 0
        except ValueError:
            return 0

    @property
    def controller_endpoints(self) -> list[tuple[str, int]]:
        """Every ``(host, port)`` of the URI (``tcp://h1:p1,h2:p2`` names several controllers of a cluster)."""
        endpoints = []
        for part in self._parts[1].split(","):
            try:
                parsed = urlsplit("//" + part.strip())
                endpoints.append((parsed.hostname or "127.0.0.1", parsed.port or 0))
            except ValueError:
                endpoints.append(("127.0.0.1", 0))
        return endpoints

    @property
    def controller_target(self) -> str:
        """The gRPC channel target: ``host:port``, or for several controllers given by IP address an ``ipv4:``
        list, so the channel fails over to another controller when one is down."""
        endpoints = self.controller_endpoints
        if len(endpoints) > 1 and all(_is_ipv4(host) for host, _ in endpoints):
            return "ipv4:" + ",".join(f"{host}:{port}" for host, port in endpoints)
        return f"{self.controller_host}:{self.controller_port}"


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def basic_credentials(username: str, password: str) -> str:
    """The ``authorization`` value for user name and password: ``Basic base64(user:password)``."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def credentials_from_env(environ: Mapping[str, str]) -> str | None:
    """Credentials from the official client's variables: method ``Basic`` with a username and password, or
    with a ready ``pravega_client_auth_token``; None when ``pravega_client_auth_method`` is unset."""
    method = environ.get(AUTH_METHOD_ENV)
    if not method:
        return None
    token = environ.get(AUTH_TOKEN_ENV)
    if token:
        return f"{method} {token}"
    if method.lower() != "basic":
        raise ConfigError(f"{AUTH_METHOD_ENV}={method}: only Basic is supported from the environment "
                          f"(or set {AUTH_TOKEN_ENV})")
    username, password = environ.get(AUTH_USERNAME_ENV), environ.get(AUTH_PASSWORD_ENV)
    if not username or password is None:
        raise ConfigError(f"{AUTH_METHOD_ENV}=Basic needs {AUTH_USERNAME_ENV} and {AUTH_PASSWORD_ENV}")
    return basic_credentials(username, password)
