"""Delegation tokens: signature, audience, expiry, Pravega's claim matching, the system token."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jwt
import pytest

from anabranch.auth.errors import AuthConfigError, TokenError, TokenExpiredError
from anabranch.auth.permissions import Permission, of_stream
from anabranch.auth.tokens import TokenSigner, TokenVerifier, claim_covers, load_or_create_key

KEY = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_token_is_a_jwt_with_pravega_claims() -> None:
    clock = Clock()
    token = TokenSigner(KEY, 60, clock).issue("alice", {of_stream("s", "t"): Permission.READ})
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims == {"sub": "alice", "aud": "segmentstore", "iat": 1_000_000, "exp": 1_000_060,
                      "prn::/scope:s/stream:t": "READ"}
    assert '"exp":1000060' in base64.urlsafe_b64decode(payload + "==").decode()  # the Rust client's regex


def test_verify_checks_expiry_with_the_clock() -> None:
    clock = Clock()
    token = TokenSigner(KEY, 2, clock).issue("alice", {of_stream("s", "t"): Permission.READ_UPDATE})
    verifier = TokenVerifier(KEY, clock)
    assert verifier.verify(token).allows("s/t/0.#epoch.0", Permission.READ_UPDATE)
    clock.now += 2
    with pytest.raises(TokenExpiredError):
        verifier.verify(token)


@pytest.mark.parametrize("token", [
    "", "not-a-jwt", "a.b.c",
    jwt.encode({"sub": "x", "aud": "segmentstore", "*": "READ_UPDATE"}, b"other" * 8, algorithm="HS256"),
    jwt.encode({"sub": "x", "aud": "controller", "*": "READ_UPDATE"}, KEY, algorithm="HS256"),
    jwt.encode({"sub": "x", "aud": "segmentstore", "*": "READ_UPDATE"}, "", algorithm="none"),
    jwt.encode({"sub": "x", "aud": "segmentstore", "prn::/scope:s": "ADMIN"}, KEY, algorithm="HS256"),
])
def test_forged_or_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenError) as info:
        TokenVerifier(KEY).verify(token)
    assert not isinstance(info.value, TokenExpiredError)


@pytest.mark.parametrize(("claim", "segment", "covered"), [
    ("prn::/scope:s/stream:t", "s/t/0.#epoch.0", True),
    ("prn::/scope:s/stream:t", "s/t", True),
    ("prn::/scope:s/stream:t", "s/tt/0.#epoch.0", False),
    ("prn::/scope:s/stream:t", "s/t/0.#epoch.0#transaction.00000000000000000000000000000001", True),
    ("prn::/scope:s/stream:_RGg_kvtable", "s/_RGg_kvtable/0.#epoch.0", True),
    ("prn::/scope:s/stream:t", "x/t/0.#epoch.0", False),
    ("*", "anything/at/all", True),
])
def test_claims_match_segments_as_pravega(claim: str, segment: str, covered: bool) -> None:
    assert claim_covers(claim, segment) is covered


def test_read_claim_does_not_allow_writes() -> None:
    token = TokenVerifier(KEY).verify(TokenSigner(KEY).issue("r", {of_stream("s", "t"): Permission.READ}))
    assert token.allows("s/t/0.#epoch.0", Permission.READ)
    assert not token.allows("s/t/0.#epoch.0", Permission.READ_UPDATE)
    assert not token.system


def test_system_token_is_renewed_before_it_expires() -> None:
    clock = Clock()
    signer = TokenSigner(KEY, 5, clock)
    first = signer.system_token()
    verified = TokenVerifier(KEY, clock).verify(first)
    assert verified.system and verified.allows("_system/_tables/scopes", Permission.READ_UPDATE)
    clock.now += 60
    assert signer.system_token() == first
    clock.now += 3600
    renewed = signer.system_token()
    assert renewed != first
    TokenVerifier(KEY, clock).verify(renewed)


def test_key_file_is_created_once_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "key"
    key = load_or_create_key(path)
    assert len(key) >= 32 and load_or_create_key(path) == key
    assert (path.stat().st_mode & 0o777) == 0o600
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(AuthConfigError, match="at least"):
        load_or_create_key(tmp_path / "short")
