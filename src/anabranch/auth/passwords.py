"""The password file: users, salted slow password hashes and ACLs, one user a line.

Each line is ``NAME:HASH:ACL`` (``#`` starts a comment line), the layout of Pravega's basic auth plugin, and
``HASH`` is Pravega's ``StrongPasswordProcessor`` encoding: hex of ``ITERATIONS:SALT_HEX:KEY_HEX`` with
PBKDF2-HMAC-SHA256 and a 64-byte key, so Pravega's password files work here and ours there. New hashes use
``DEFAULT_ITERATIONS`` (the count is stored per hash, so it can grow without breaking old entries).
Clear-text passwords are never stored. Writes are atomic (temporary file, fsync, rename) and the file is
readable by its owner only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from anabranch.auth.errors import AuthConfigError
from anabranch.auth.permissions import Acl

DEFAULT_ITERATIONS = 100_000
KEY_LENGTH = 64
SALT_LENGTH = 32


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    salt = secrets.token_bytes(SALT_LENGTH)
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, KEY_LENGTH)
    return f"{iterations}:{salt.hex()}:{key.hex()}".encode().hex()


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; a malformed hash never matches."""
    try:
        iterations_text, salt_hex, key_hex = bytes.fromhex(encoded).decode().split(":")
        iterations, salt, key = int(iterations_text), bytes.fromhex(salt_hex), bytes.fromhex(key_hex)
    except ValueError:
        return False
    if not 0 < iterations <= 10_000_000 or not key:
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, len(key))
    return hmac.compare_digest(candidate, key)


def validate_user_name(name: str) -> str:
    if not name or ":" in name or name != name.strip() or any(ch in name for ch in "\r\n#"):
        raise AuthConfigError(f"user name {name!r} must be non-empty, without ':', '#', line breaks or "
                              f"surrounding spaces")
    return name


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str
    acl: Acl

    def line(self) -> str:
        return f"{self.name}:{self.password_hash}:{self.acl}"


def parse_users(text: str, source: str = "password file") -> dict[str, User]:
    users: dict[str, User] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":", 2)
        if len(fields) < 2:
            raise AuthConfigError(f"{source} line {number}: expected NAME:HASH:ACL")
        try:
            acl = Acl.parse(fields[2] if len(fields) == 3 else "")
        except AuthConfigError as exc:
            raise AuthConfigError(f"{source} line {number}: {exc}") from None
        users[fields[0]] = User(fields[0], fields[1], acl)
    return users


class PasswordFile:
    """A password file on disk: load, add, remove (atomic rewrites)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, User]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            raise AuthConfigError(f"password file {self.path} does not exist; create users with "
                                  f"'anabranch user add NAME --password-file {self.path} --acl ACL'") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AuthConfigError(f"cannot read password file {self.path}: {exc}") from None
        return parse_users(text, str(self.path))

    def load_or_empty(self) -> dict[str, User]:
        return self.load() if self.path.exists() else {}

    def save(self, users: dict[str, User]) -> None:
        text = "".join(f"{user.line()}\n" for user in users.values())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def add(self, name: str, password: str, acl: str, *, iterations: int = DEFAULT_ITERATIONS) -> User:
        """Add or replace user ``name``."""
        user = User(validate_user_name(name), hash_password(password, iterations), Acl.parse(acl))
        users = self.load_or_empty()
        users[name] = user
        self.save(users)
        return user

    def remove(self, name: str) -> None:
        users = self.load()
        if users.pop(name, None) is None:
            raise AuthConfigError(f"no user {name!r} in {self.path}")
        self.save(users)
