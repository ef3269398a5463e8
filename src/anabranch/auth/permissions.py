"""Pravega's resource strings, permissions and ACLs.

Resources (as ``AuthorizationResourceImpl``): ``prn::/`` (all scopes), ``prn::/scope:S``,
``prn::/scope:S/stream:T``, ``prn::/scope:S/reader-group:G``, ``prn::/scope:S/key-value-table:K``.
An ACL is ``;``-separated entries ``RESOURCE_PATTERN,PERMISSION`` where ``*`` matches any run of characters
(``prn::*`` is everything, ``prn::/scope:S/*`` everything inside scope S but not S itself); the first entry
whose pattern matches the whole resource decides, no match means NONE. Permissions are ordered
NONE < READ < READ_UPDATE.

Internal streams map to the resource they serve (Pravega's ``ofInternalStream``): ``_RG<g>`` is reader group
``g``, ``_MARK<t>`` is stream ``t``; Anabranch adds the reader-group state tables of the Rust client
(``<g>_kvtable``) and of its own client (``_RG<g>_kvtable``), both reader group ``g``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from anabranch.auth.errors import AuthConfigError
from anabranch.model.names import KVTABLE_SUFFIX, MARK_PREFIX, READER_GROUP_STREAM_PREFIX

DOMAIN = "prn::"


class Permission(enum.IntEnum):
    NONE = 0
    READ = 1
    READ_UPDATE = 2

    @classmethod
    def parse(cls, text: str) -> Permission:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise AuthConfigError(f"unknown permission {text!r}; use READ or READ_UPDATE") from None


def of_scopes() -> str:
    return f"{DOMAIN}/"


def of_scope(scope: str) -> str:
    return f"{DOMAIN}/scope:{scope}"


def of_stream(scope: str, stream: str) -> str:
    return f"{of_scope(scope)}/stream:{stream}"


def of_reader_group(scope: str, group: str) -> str:
    return f"{of_scope(scope)}/reader-group:{group}"


def of_key_value_table(scope: str, table: str) -> str:
    return f"{of_scope(scope)}/key-value-table:{table}"


def reader_group_of(stream: str) -> str | None:
    """The reader group whose stream or state table ``stream`` is, or None for any other stream."""
    if stream.startswith(READER_GROUP_STREAM_PREFIX):
        group = stream[len(READER_GROUP_STREAM_PREFIX):]
        return group.removesuffix(KVTABLE_SUFFIX) or None
    if stream.endswith(KVTABLE_SUFFIX) and len(stream) > len(KVTABLE_SUFFIX):
        return stream[: -len(KVTABLE_SUFFIX)]
    return None


def of_any_stream(scope: str, stream: str) -> str:
    """The resource guarding ``scope/stream``, internal streams mapped to what they serve."""
    group = reader_group_of(stream)
    if group is not None:
        return of_reader_group(scope, group)
    if stream.startswith(MARK_PREFIX) and len(stream) > len(MARK_PREFIX):
        return of_stream(scope, stream[len(MARK_PREFIX):])
    return of_stream(scope, stream)


def write_permission_for(stream: str) -> Permission:
    """What a caller needs on ``of_any_stream`` to write ``stream``: reader-group state and watermark streams
    only need READ (readers write their group's state), as Pravega's ``requiredPermissionForWrites``."""
    if reader_group_of(stream) is not None or stream.startswith(MARK_PREFIX):
        return Permission.READ
    return Permission.READ_UPDATE


@dataclass(frozen=True, slots=True)
class AclEntry:
    pattern: str
    permission: Permission

    def matches(self, resource: str) -> bool:
        return _compile(self.pattern).fullmatch(resource) is not None

    def __str__(self) -> str:
        return f"{self.pattern},{self.permission.name}"


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
        _PATTERNS[pattern] = compiled
    return compiled


@dataclass(frozen=True, slots=True)
class Acl:
    entries: tuple[AclEntry, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Acl:
        """Parse ``prn::/scope:S/*,READ_UPDATE;prn::*,READ`` (empty text: no permissions at all)."""
        entries = []
        for raw in text.split(";"):
            raw = raw.strip()
            if not raw:
                continue
            resource, sep, permission = raw.rpartition(",")
            resource = resource.strip()
            if not sep or not resource:
                raise AuthConfigError(f"ACL entry {raw!r} is not RESOURCE,PERMISSION (e.g. prn::/scope:demo/*,READ)")
            if not resource.startswith(DOMAIN):
                raise AuthConfigError(f"ACL resource {resource!r} must start with {DOMAIN} (e.g. prn::*)")
            entries.append(AclEntry(resource, Permission.parse(permission)))
        return cls(tuple(entries))

    def permission_for(self, resource: str) -> Permission:
        for entry in self.entries:
            if entry.matches(resource):
                return entry.permission
        return Permission.NONE

    def __str__(self) -> str:
        return ";".join(str(e) for e in self.entries)
