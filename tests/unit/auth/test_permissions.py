"""ACL grammar and resource strings (Pravega's ``prn::`` resources, first matching entry decides)."""

from __future__ import annotations

import pytest

from anabranch.auth.errors import AuthConfigError
from anabranch.auth.permissions import (
    Acl,
    Permission,
    of_any_stream,
    of_key_value_table,
    of_reader_group,
    of_scope,
    of_scopes,
    of_stream,
    write_permission_for,
)


def test_resource_strings_follow_pravega() -> None:
    assert of_scopes() == "prn::/"
    assert of_scope("s") == "prn::/scope:s"
    assert of_stream("s", "t") == "prn::/scope:s/stream:t"
    assert of_reader_group("s", "g") == "prn::/scope:s/reader-group:g"
    assert of_key_value_table("s", "k") == "prn::/scope:s/key-value-table:k"


@pytest.mark.parametrize(("stream", "resource"), [
    ("t", "prn::/scope:s/stream:t"),
    ("_RGgroup", "prn::/scope:s/reader-group:group"),
    ("_RGgroup_kvtable", "prn::/scope:s/reader-group:group"),
    ("group_kvtable", "prn::/scope:s/reader-group:group"),
    ("_MARKt", "prn::/scope:s/stream:t"),
])
def test_internal_streams_map_to_what_they_serve(stream: str, resource: str) -> None:
    assert of_any_stream("s", stream) == resource


def test_reader_group_and_watermark_writes_need_only_read() -> None:
    assert write_permission_for("t") is Permission.READ_UPDATE
    assert write_permission_for("_RGg") is Permission.READ
    assert write_permission_for("g_kvtable") is Permission.READ
    assert write_permission_for("_MARKt") is Permission.READ


def test_first_matching_entry_decides() -> None:
    acl = Acl.parse("prn::/scope:a/stream:secret,READ; prn::/scope:a/*,READ_UPDATE;prn::*,READ")
    assert acl.permission_for(of_stream("a", "secret")) is Permission.READ
    assert acl.permission_for(of_stream("a", "open")) is Permission.READ_UPDATE
    assert acl.permission_for(of_scope("a")) is Permission.READ  # "a/*" does not cover the scope itself
    assert acl.permission_for(of_stream("b", "x")) is Permission.READ
    assert acl.permission_for(of_scopes()) is Permission.READ


def test_no_match_means_none_and_dots_are_literal() -> None:
    acl = Acl.parse("prn::/scope:a.b/*,READ_UPDATE")
    assert acl.permission_for(of_stream("a.b", "t")) is Permission.READ_UPDATE
    assert acl.permission_for(of_stream("axb", "t")) is Permission.NONE
    assert Acl.parse("").permission_for(of_scopes()) is Permission.NONE


def test_acl_round_trips_through_text() -> None:
    text = "prn::/scope:a/*,READ_UPDATE;prn::/,READ"
    assert str(Acl.parse(text)) == text


@pytest.mark.parametrize("bad", ["prn::*", "prn::*,WRITE", "/scope:a,READ", ",READ"])
def test_bad_acl_entries_are_refused_with_the_entry(bad: str) -> None:
    with pytest.raises(AuthConfigError, match=r"ACL|permission|prn::"):
        Acl.parse(bad)
