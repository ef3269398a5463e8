"""Errors of table segments, each mapped to one wire reply by the request handler (spec §8.2)."""

from __future__ import annotations

from anabranch.errors import AnabranchError


class TableError(AnabranchError):
    """Base of table-segment errors."""


class TableSegmentNotEmptyError(TableError):
    """A table segment that must be empty to be deleted still holds entries."""


class TableKeyDoesNotExistError(TableError):
    """A conditional update or removal named a version for a key that is absent."""


class TableKeyBadVersionError(TableError):
    """A conditional update or removal named a version that is not the key's current one."""


class TableArgumentError(TableError, ValueError):
    """A key, value, continuation token or position is invalid (empty or too long key, too long value...)."""
