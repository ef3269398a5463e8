"""Client credentials (ClientConfig, the official client's env variables) and the client's token cache."""

from __future__ import annotations

import asyncio

import pytest

from anabranch.auth.permissions import Permission
from anabranch.auth.tokens import TokenSigner
from anabranch.client.config import ClientConfig, basic_credentials, credentials_from_env
from anabranch.client.tokens import TokenCache, token_lifetime
from anabranch.errors import ConfigError


def test_basic_credentials_match_the_rust_client() -> None:
    assert basic_credentials("admin", "1111_aaaa") == "Basic YWRtaW46MTExMV9hYWFh"


def test_config_sources_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("pravega_client_auth_method", raising=False)
    assert ClientConfig().authorization is None
    assert ClientConfig(username="u", password="p").authorization == basic_credentials("u", "p")
    assert ClientConfig(auth_token="Bearer x").authorization == "Bearer x"
    monkeypatch.setenv("pravega_client_auth_method", "Basic")
    monkeypatch.setenv("pravega_client_auth_username", "e")
    monkeypatch.setenv("pravega_client_auth_password", "q")
    assert ClientConfig().authorization == basic_credentials("e", "q")
    assert ClientConfig(username="u", password="p").authorization == basic_credentials("u", "p")
    assert "password" not in repr(ClientConfig(username="u", password="p"))


def test_env_variants_and_errors() -> None:
    assert credentials_from_env({}) is None
    assert credentials_from_env({"pravega_client_auth_method": "Bearer",
                                 "pravega_client_auth_token": "abc"}) == "Bearer abc"
    with pytest.raises(ConfigError, match="username"):
        credentials_from_env({"pravega_client_auth_method": "Basic"})
    with pytest.raises(ConfigError, match="only Basic"):
        credentials_from_env({"pravega_client_auth_method": "Bearer"})
    with pytest.raises(ConfigError):
        ClientConfig(username="u")
    with pytest.raises(ConfigError):
        ClientConfig(auth_token="Basic x", username="u", password="p")


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_cache_renews_before_expiry_and_on_demand() -> None:
    clock = Clock()
    signer = TokenSigner(b"k" * 32, 10, clock)
    fetched: list[tuple[str, str]] = []

    async def fetch(scope: str, stream: str) -> str:
        fetched.append((scope, stream))
        return signer.issue("u", {f"prn::/scope:{scope}/stream:{stream}": Permission.READ})

    cache = TokenCache(fetch, enabled=True, clock=clock)
    first = await cache.get("s", "t")
    assert token_lifetime(first) == (1_000_000, 1_000_010)
    assert await asyncio.gather(*(cache.for_segment("s/t/0.#epoch.0") for _ in range(5))) == [first] * 5
    assert fetched == [("s", "t")]
    clock.now += 7  # 2 s (20 % of 10 s) before expiry: renewed
    clock.now += 1.5
    await cache.get("s", "t")
    await cache.get("s", "t", refresh=True)
    assert fetched == [("s", "t")] * 3


async def test_disabled_cache_never_asks() -> None:
    async def fetch(scope: str, stream: str) -> str:
        raise AssertionError("asked the controller")

    assert await TokenCache(fetch, enabled=False).get("s", "t") == ""
    assert token_lifetime("") is None and token_lifetime("a.b.c") is None
