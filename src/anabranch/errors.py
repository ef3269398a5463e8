"""The root of Anabranch's exceptions, shared by every plane.

Each error is named for the situation and carries ``retriable``: whether trying the same
operation again may succeed. Retry loops read that flag; nothing parses messages. Planes
define their specific errors in their own packages, deriving from these.
"""

from __future__ import annotations


class AnabranchError(Exception):
    """Base of every error Anabranch raises on purpose."""

    retriable: bool = False


class InvalidNameError(AnabranchError, ValueError):
    """A scope, stream, reader-group, table or segment name breaks Pravega's naming rules."""


class ProtocolError(AnabranchError):
    """Bytes on a connection do not form valid Pravega wire commands; the connection must close."""


class ConfigError(AnabranchError, ValueError):
    """A setting or argument is out of range or inconsistent."""


class DataCorruptionError(AnabranchError):
    """Stored data failed a checksum or structural check somewhere other than a log's torn tail."""


# ---- families: every plane's specific errors derive from one of these, so a caller can catch by kind ----


class NotFoundError(AnabranchError):
    """The scope, stream, segment, reader group, table, key or transaction does not exist."""


class AlreadyExistsError(AnabranchError):
    """Something of that name already exists."""


class SealedError(AnabranchError):
    """The stream or segment is sealed: nothing more can be written to it."""


class TruncatedError(AnabranchError):
    """The data asked for lies before the head of a truncated stream or segment."""


class ConflictError(AnabranchError):
    """A conditional update lost against another writer (offset, version or generation): re-read and retry."""


class UnavailableError(AnabranchError):
    """A server could not be reached or did not answer in time (after the retries of the retry policy)."""

    retriable = True


class AuthError(AnabranchError):
    """Credentials were refused or do not allow the operation."""


class ConnectionFailedError(UnavailableError, ConnectionError):
    """A connection could not be made or was lost."""

    retriable = True
