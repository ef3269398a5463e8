"""The password file: Pravega-compatible PBKDF2 hashes, atomic owner-only writes, clear errors."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from anabranch.auth.errors import AuthConfigError
from anabranch.auth.passwords import PasswordFile, hash_password, parse_users, verify_password
from anabranch.auth.permissions import Permission, of_stream


def test_hash_verifies_only_the_right_password() -> None:
    encoded = hash_password("s3cret", iterations=1000)
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret!", encoded)
    assert "s3cret" not in encoded
    assert encoded != hash_password("s3cret", iterations=1000)  # salted


def test_reads_pravega_strong_password_processor_hashes() -> None:
    """Pravega stores hex("iterations:hex(salt):hex(PBKDF2WithHmacSHA256, 512-bit key)")."""
    salt = bytes(range(32))
    key = hashlib.pbkdf2_hmac("sha256", b"1111_aaaa", salt, 5000, 64)
    pravega = f"5000:{salt.hex()}:{key.hex()}".encode().hex()
    assert verify_password("1111_aaaa", pravega)
    assert not verify_password("1111_aaab", pravega)


@pytest.mark.parametrize("garbage", ["", "zz", "31323a", b"0:00:00".hex(), b"x:y:z".hex()])
def test_malformed_hashes_never_match(garbage: str) -> None:
    assert not verify_password("", garbage)


def test_add_list_remove(tmp_path: Path) -> None:
    file = PasswordFile(tmp_path / "users")
    file.add("alice", "pw-a", "prn::*,READ_UPDATE", iterations=1000)
    file.add("bob", "pw-b", "prn::/scope:x/*,READ", iterations=1000)
    users = file.load()
    assert sorted(users) == ["alice", "bob"]
    assert users["bob"].acl.permission_for(of_stream("x", "t")) is Permission.READ
    assert stat.S_IMODE((tmp_path / "users").stat().st_mode) == 0o600
    file.add("bob", "pw-b2", "", iterations=1000)
    assert verify_password("pw-b2", file.load()["bob"].password_hash)
    file.remove("alice")
    assert sorted(file.load()) == ["bob"]
    with pytest.raises(AuthConfigError, match="no user 'alice'"):
        file.remove("alice")


def test_comments_blank_lines_and_missing_acl() -> None:
    users = parse_users("# admin\n\nalice:abc\nbob:def:prn::*,READ\n")
    assert sorted(users) == ["alice", "bob"]
    assert str(users["alice"].acl) == ""


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="does not exist"):
        PasswordFile(tmp_path / "none").load()
    bad = tmp_path / "bad"
    bad.write_text("alice:abc:prn::*,READ\nbob:def:nonsense\n")
    with pytest.raises(AuthConfigError, match="line 2"):
        PasswordFile(bad).load()


@pytest.mark.parametrize("name", ["", "a:b", " a", "a\nb"])
def test_bad_user_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(AuthConfigError, match="user name"):
        PasswordFile(tmp_path / "u").add(name, "pw", "", iterations=1000)
