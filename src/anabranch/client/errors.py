"""Client errors: one exception per actionable failure, each with ``retriable``.

Owns the mapping from segment-store error replies and controller status enums to typed
exceptions, so no raw protocol reply or gRPC status leaks out of the client. Every error also belongs to a
family from ``anabranch.errors`` (``NotFoundError``, ``AlreadyExistsError``, ``SealedError``,
``TruncatedError``, ``ConflictError``, ``UnavailableError``, ``AuthError``) that callers can catch, shared
with the controller's errors. Retry loops read
``retriable``; nothing parses messages.
"""

from __future__ import annotations

from anabranch.errors import (
    AlreadyExistsError,
    AnabranchError,
    AuthError,
    ConflictError,
    ConnectionFailedError,
    InvalidNameError,
    NotFoundError,
    SealedError,
    TruncatedError,
    UnavailableError,
)
from anabranch.protocol import commands as wire
from anabranch.protocol.reply_errors import ReplyErrorKind as Kind
from anabranch.protocol.reply_errors import classify

__all__ = [
    "AlreadyExistsError",
    "AuthError",
    "AuthenticationError",
    "AuthorizationError",
    "ClientClosedError",
    "ClientError",
    "ConditionalCheckFailedError",
    "ConflictError",
    "ConnectionLostError",
    "ControllerError",
    "ControllerUnavailableError",
    "InvalidNameError",
    "KeyDoesNotExistError",
    "KeyValueTableExistsError",
    "NoSuchKeyValueTableError",
    "NoSuchReaderGroupError",
    "NoSuchScopeError",
    "NoSuchSegmentError",
    "NoSuchStreamError",
    "NoSuchTransactionError",
    "NotFoundError",
    "OperationTimeoutError",
    "ReaderGroupConfigError",
    "ScaleFailedError",
    "ScopeNotEmptyError",
    "SealedError",
    "SegmentExistsError",
    "SegmentSealedError",
    "SegmentStoreError",
    "SegmentTruncatedError",
    "StreamNotSealedError",
    "StreamSealedError",
    "TableNotEmptyError",
    "TruncatedError",
    "TxnFailedError",
    "UnavailableError",
    "VersionConflictError",
    "WrongHostError",
    "error_from_reply",
]


class ClientError(AnabranchError):
    """Base of every error the client raises."""


class ControllerError(ClientError):
    """The controller refused or failed an operation; ``retriable`` says whether trying again may help."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class ControllerUnavailableError(ControllerError, UnavailableError):
    """The controller could not be reached (after retries); check ``controller_uri`` and that it runs."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True)


class AuthenticationError(ClientError, AuthError):
    """Credentials or a delegation token were rejected; fix the credentials of ``ClientConfig``
    (``username``/``password``, ``auth_token`` or the ``pravega_client_auth_*`` environment variables)."""


class AuthorizationError(ClientError, AuthError):
    """The credentials are valid but their ACL does not allow this operation; ask for the permission named in
    the message (READ or READ_UPDATE on a ``prn::`` resource)."""


class NoSuchScopeError(ClientError, NotFoundError):
    """The scope does not exist: create it with ``StreamManager.create_scope``."""


class ScopeNotEmptyError(ClientError):
    """The scope still holds streams, reader groups or tables: delete them first."""


class NoSuchStreamError(ClientError, NotFoundError):
    """The stream does not exist: create it with ``StreamManager.create_stream``."""


class StreamSealedError(ClientError, SealedError):
    """The stream is sealed: nothing more can be written to it."""


class StreamNotSealedError(ClientError):
    """Only a sealed stream can be deleted: seal it first."""


class ScaleFailedError(ClientError):
    """A scale request was rejected (bad ranges, segments not current, below the minimum segment count)."""


class NoSuchTransactionError(ClientError, NotFoundError):
    """The controller does not know the transaction (it timed out or never existed)."""


class TxnFailedError(ClientError):
    """The transaction is no longer open (committed, aborted or timed out); begin a new one."""


class NoSuchReaderGroupError(ClientError, NotFoundError):
    """The reader group does not exist."""


class ReaderGroupConfigError(ClientError, ConflictError):
    """A reader-group update was rejected (stale generation or id): re-read the configuration and retry."""


class NoSuchKeyValueTableError(ClientError, NotFoundError):
    """The key-value table does not exist."""


class KeyValueTableExistsError(ClientError, AlreadyExistsError):
    """A key-value table with that name already exists."""


class SegmentStoreError(ClientError):
    """The segment store answered with an error reply that has no more specific class.

    For an ``ErrorMessage`` reply (e.g. the server's disk is full), ``error_code`` and ``server_message`` carry
    what the server said, unchanged.
    """

    def __init__(self, message: str, *, error_code: int | None = None, server_message: str = "") -> None:
        super().__init__(message)
        self.error_code = error_code
        self.server_message = server_message


class NoSuchSegmentError(ClientError, NotFoundError):
    """The segment does not exist (deleted, truncated away or never created)."""


class SegmentExistsError(ClientError, AlreadyExistsError):
    """The segment already exists."""


class SegmentSealedError(ClientError, SealedError):
    """The segment is sealed; a writer moves to its successors."""


class SegmentTruncatedError(ClientError, TruncatedError):
    """The requested offset lies before the segment's start; read from ``start_offset`` instead."""

    def __init__(self, message: str, start_offset: int = -1) -> None:
        super().__init__(message)
        self.start_offset = start_offset


class ConditionalCheckFailedError(ClientError, ConflictError):
    """A conditional append found the segment at a different offset than expected."""


class VersionConflictError(ClientError, ConflictError):
    """A conditional table update or removal found another version of the key: re-read and retry."""


class KeyDoesNotExistError(ClientError, NotFoundError):
    """A conditional table update or removal expected the key to exist, and it does not."""


class TableNotEmptyError(ClientError):
    """The table segment is not empty and the deletion required it to be."""


class WrongHostError(ClientError):
    """The segment store does not own the segment; the client asks the controller again."""

    retriable = True


class ConnectionLostError(ConnectionFailedError, ClientError):
    """The connection to a segment store broke; in-flight work is retried on a new connection."""

    retriable = True


class OperationTimeoutError(ClientError, UnavailableError, TimeoutError):
    """An operation did not complete within its time limit."""

    retriable = True


class ClientClosedError(ClientError):
    """The writer, reader or manager was closed; create a new one."""


def error_from_reply(reply: wire.Reply, what: str = "") -> ClientError:
    """The typed exception for a segment-store error reply (``what`` names the operation for the message); the
    reply's meaning comes from the shared table in ``anabranch.protocol.reply_errors``."""
    prefix = f"{what}: " if what else ""
    found = classify(reply)
    if found is None:
        return SegmentStoreError(f"{prefix}unexpected reply {type(reply).__name__}")
    kind, segment = found.kind, found.segment
    if kind is Kind.NO_SUCH_SEGMENT:
        return NoSuchSegmentError(f"{prefix}segment {segment} does not exist")
    if kind is Kind.SEGMENT_EXISTS:
        return SegmentExistsError(f"{prefix}segment {segment} already exists")
    if kind is Kind.SEGMENT_SEALED:
        return SegmentSealedError(f"{prefix}segment {segment} is sealed")
    if kind is Kind.SEGMENT_TRUNCATED:
        return SegmentTruncatedError(f"{prefix}segment {segment} starts at {found.start_offset}", found.start_offset)
    if kind is Kind.WRONG_HOST:
        return WrongHostError(f"{prefix}segment {segment} is not served by this segment store")
    if kind is Kind.CONDITIONAL_CHECK_FAILED:
        return ConditionalCheckFailedError(f"{prefix}conditional append of event {found.event_number} failed")
    if kind is Kind.KEY_BAD_VERSION:
        return VersionConflictError(f"{prefix}a key of table {segment} has another version")
    if kind is Kind.KEY_DOES_NOT_EXIST:
        return KeyDoesNotExistError(f"{prefix}a key of table {segment} does not exist")
    if kind is Kind.TABLE_NOT_EMPTY:
        return TableNotEmptyError(f"{prefix}table {segment} is not empty")
    if kind is Kind.TOKEN_REJECTED:
        return AuthorizationError(f"{prefix}the segment store refused the delegation token: {found.detail}")
    if kind is Kind.UNSUPPORTED:
        return SegmentStoreError(f"{prefix}the segment store does not support {found.detail}")
    if kind in (Kind.SERVER_ERROR, Kind.ILLEGAL_ARGUMENT):
        return SegmentStoreError(f"{prefix}segment store error on {segment or 'the connection'}: "
                                 f"{found.detail} (code {found.error_code})",
                                 error_code=found.error_code, server_message=found.detail)
    return SegmentStoreError(f"{prefix}segment store answered: {kind.value} ({segment})")
