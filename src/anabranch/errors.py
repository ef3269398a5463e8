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


class ConnectionFailedError(AnabranchError, ConnectionError):
    """A connection could not be made or was lost."""

    retriable = True
