"""The segment store's token check for every wire command that names a segment."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import jwt
import pytest

from anabranch.auth.permissions import Permission, of_stream
from anabranch.auth.tokens import TokenSigner, TokenVerifier
from anabranch.auth.wire_auth import RULES, TOKEN_CHECK_FAILED, TOKEN_EXPIRED, WireAuthorizer
from anabranch.protocol import commands as c

KEY = b"wire-key" * 4
SEGMENT = "s/t/0.#epoch.0"
_NAME_FIELDS = {"segment", "segment_name", "parent_segment", "target", "source"}


def build(kind: type[c.Request], segment: str, token: str) -> c.Request:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(kind):  # type: ignore[arg-type]
        if f.name in _NAME_FIELDS:
            values[f.name] = segment
        elif f.name == "sources":
            values[f.name] = (segment,)
        elif f.name == "delegation_token":
            values[f.name] = token
        elif f.name == "request_id":
            values[f.name] = 7
        elif f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        else:
            values[f.name] = {"int": 0, "str": "", "bool": False, "bytes": b"", "uuid.UUID": uuid.uuid4(),
                              "TableIteratorArgs": c.TableIteratorArgs()}.get(str(f.type), ())
    return kind(**values)


def reads(kind: type[c.Request]) -> bool:
    return RULES[kind][0] is Permission.READ


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(clock: Clock) -> TokenSigner:
    return TokenSigner(KEY, 10, clock)


@pytest.fixture
def on(clock: Clock) -> WireAuthorizer:
    return WireAuthorizer(TokenVerifier(KEY, clock), enabled=True)


ALL = sorted(RULES, key=lambda k: k.__name__)


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.__name__)
def test_valid_token_with_enough_permission_passes(kind: type[c.Request], on: WireAuthorizer,
                                                   signer: TokenSigner) -> None:
    token = signer.issue("u", {of_stream("s", "t"): Permission.READ_UPDATE})
    assert on.check(build(kind, SEGMENT, token)) is None


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.__name__)
def test_missing_forged_wrong_resource_and_expired_tokens_are_refused(
        kind: type[c.Request], on: WireAuthorizer, signer: TokenSigner, clock: Clock) -> None:
    forged = jwt.encode({"sub": "u", "aud": "segmentstore", "*": "READ_UPDATE"}, b"x" * 32, algorithm="HS256")
    other = signer.issue("u", {of_stream("s", "other"): Permission.READ_UPDATE})
    for token in ("", forged, other):
        refusal = on.check(build(kind, SEGMENT, token))
        assert refusal is not None and refusal.error_code == TOKEN_CHECK_FAILED and refusal.request_id == 7
    expiring = signer.issue("u", {of_stream("s", "t"): Permission.READ_UPDATE})
    clock.now += 10
    refusal = on.check(build(kind, SEGMENT, expiring))
    assert refusal is not None and refusal.error_code == TOKEN_EXPIRED


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.__name__)
def test_read_tokens_allow_reads_only(kind: type[c.Request], on: WireAuthorizer, signer: TokenSigner) -> None:
    token = signer.issue("u", {of_stream("s", "t"): Permission.READ})
    refusal = on.check(build(kind, SEGMENT, token))
    assert (refusal is None) == reads(kind)


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.__name__)
@pytest.mark.parametrize("segment", ["_system/_tables/scopes", "s/_tables/anything", "_system/x/0.#epoch.0"])
def test_system_segments_need_the_system_token_even_with_auth_off(
        kind: type[c.Request], segment: str, signer: TokenSigner, clock: Clock) -> None:
    off = WireAuthorizer(TokenVerifier(KEY, clock), enabled=False)
    everything = signer.issue("admin", {"prn::*": Permission.READ_UPDATE, "*": Permission.READ_UPDATE})
    for authorizer in (off, WireAuthorizer(TokenVerifier(KEY, clock), enabled=True)):
        for token in ("", everything):
            refusal = authorizer.check(build(kind, segment, token))
            assert refusal is not None and refusal.error_code == TOKEN_CHECK_FAILED
        assert authorizer.check(build(kind, segment, signer.system_token())) is None


def test_auth_off_leaves_user_segments_open(clock: Clock) -> None:
    off = WireAuthorizer(TokenVerifier(KEY, clock), enabled=False)
    assert all(off.check(build(kind, SEGMENT, "")) is None for kind in ALL)


def test_merges_check_every_segment(on: WireAuthorizer, signer: TokenSigner) -> None:
    token = signer.issue("u", {of_stream("s", "t"): Permission.READ_UPDATE})
    assert on.check(c.MergeSegments(1, SEGMENT, "s/t/0.#epoch.0#transient.x", token)) is None
    assert on.check(c.MergeSegments(1, SEGMENT, "s/other/0.#epoch.0", token)) is not None
    assert on.check(c.MergeSegmentsBatch(1, SEGMENT, ("s/t/1.#epoch.0", "s/u/0.#epoch.0"), token)) is not None


def test_commands_without_a_segment_pass(on: WireAuthorizer) -> None:
    assert on.check(c.Hello(17, 5)) is None
    assert on.check(c.KeepAlive()) is None
