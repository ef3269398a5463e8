"""Which permission on which resource each Controller rpc needs (the table docs/security.md shows).

Follows Pravega's ``ControllerServiceImpl``; ``RULES`` names every rpc of ``ControllerService`` (a test keeps it
complete; an rpc missing here is refused). ``resource`` maps the request to the resource string; ``token``
marks replies that carry a delegation token for the request's stream. ``LISTINGS`` are the list rpcs that,
as in Pravega, show a caller without READ on the whole listing only the entries it may READ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anabranch.auth.permissions import (
    Permission,
    of_any_stream,
    of_key_value_table,
    of_scope,
    of_scopes,
    write_permission_for,
)

R = Permission.READ
RU = Permission.READ_UPDATE


@dataclass(frozen=True, slots=True)
class Rule:
    resource: Callable[[Any], str] | None
    """Request → resource; None: authentication alone suffices."""
    permission: Permission | Callable[[Any], Permission]
    token: Callable[[Any], tuple[str, str]] | None = None
    """Request → (scope, stream) a delegation token in the reply covers."""

    def needed(self, request: Any) -> Permission:
        return self.permission if isinstance(self.permission, Permission) else self.permission(request)


def _info(request: Any) -> Any:
    return request


def _stream_info(request: Any) -> Any:
    return request.streamInfo


def _stream(get: Callable[[Any], Any]) -> Callable[[Any], str]:
    return lambda request: of_any_stream(get(request).scope, get(request).stream)


def _pair(get: Callable[[Any], Any]) -> Callable[[Any], tuple[str, str]]:
    return lambda request: (get(request).scope, get(request).stream)


_on_info = _stream(_info)
_on_stream_info = _stream(_stream_info)


def _scope_of_info(request: Any) -> str:
    return of_scope(request.scope)


def _all_scopes(request: Any) -> str:
    return of_scopes()


RULES: dict[str, Rule] = {
    "getControllerServerList": Rule(None, Permission.NONE),
    "getControllerToBucketMapping": Rule(_all_scopes, RU),
    # scopes
    "createScope": Rule(_all_scopes, RU),
    "deleteScope": Rule(_all_scopes, RU),
    "deleteScopeRecursive": Rule(_all_scopes, RU),
    "listScopes": Rule(_all_scopes, R),
    "checkScopeExists": Rule(_scope_of_info, R),
    # streams
    "createStream": Rule(lambda r: of_scope(r.streamInfo.scope), lambda r: write_permission_for(r.streamInfo.stream)),
    "updateStream": Rule(_on_stream_info, RU),
    "truncateStream": Rule(_on_stream_info, RU),
    "sealStream": Rule(_on_info, RU),
    "deleteStream": Rule(_on_info, RU),
    "checkStreamExists": Rule(_on_info, R),
    "getStreamConfiguration": Rule(_on_info, R),
    "listStreamsInScope": Rule(lambda r: of_scope(r.scope.scope), R),
    "listStreamsInScopeForTag": Rule(lambda r: of_scope(r.scope.scope), R),
    # segments
    "getCurrentSegments": Rule(_on_info, R, _pair(_info)),
    "getEpochSegments": Rule(_on_stream_info, R, _pair(_stream_info)),
    "getSegments": Rule(_on_stream_info, R, _pair(_stream_info)),
    "getSegmentsImmediatelyFollowing": Rule(_on_stream_info, R, _pair(_stream_info)),
    "getSegmentsImmediatlyFollowing": Rule(_on_stream_info, R, _pair(_stream_info)),
    "getSegmentsBetween": Rule(_on_stream_info, R, _pair(_stream_info)),
    "getURI": Rule(_on_stream_info, R),
    "isSegmentValid": Rule(_on_stream_info, R),
    "isStreamCutValid": Rule(_on_stream_info, R),
    "getDelegationToken": Rule(_on_info, R, _pair(_info)),
    # scaling
    "scale": Rule(_on_stream_info, RU),
    "checkScale": Rule(_on_stream_info, R),
    # transactions
    "createTransaction": Rule(_on_stream_info, RU, _pair(_stream_info)),
    "commitTransaction": Rule(_on_stream_info, RU),
    "abortTransaction": Rule(_on_stream_info, RU),
    "pingTransaction": Rule(_on_stream_info, RU),
    "checkTransactionState": Rule(_on_stream_info, R),
    "listCompletedTransactions": Rule(_on_stream_info, R),
    # writers
    "noteTimestampFromWriter": Rule(lambda r: of_any_stream(r.position.streamInfo.scope, r.position.streamInfo.stream),
                                    RU),
    "removeWriter": Rule(lambda r: of_any_stream(r.stream.scope, r.stream.stream), RU),
    # reader groups and subscribers (Pravega: READ on the scope suffices for reader-group writes)
    "createReaderGroup": Rule(lambda r: of_scope(r.scope), R),
    "updateReaderGroup": Rule(lambda r: of_scope(r.scope), R),
    "deleteReaderGroup": Rule(_scope_of_info, R),
    "getReaderGroupConfig": Rule(_scope_of_info, R),
    "listSubscribers": Rule(_on_info, RU),
    "updateSubscriberStreamCut": Rule(lambda r: of_any_stream(r.streamCut.streamInfo.scope,
                                                              r.streamCut.streamInfo.stream), RU),
    # key-value tables
    "createKeyValueTable": Rule(lambda r: of_scope(r.scope), RU),
    "getCurrentSegmentsKeyValueTable": Rule(lambda r: of_key_value_table(r.scope, r.kvtName), RU,
                                            lambda r: (r.scope, r.kvtName)),
    "listKeyValueTablesInScope": Rule(lambda r: of_scope(r.scope.scope), R),
    "getKeyValueTableConfiguration": Rule(lambda r: of_key_value_table(r.scope, r.kvtName), R),
    "deleteKeyValueTable": Rule(lambda r: of_key_value_table(r.scope, r.kvtName), RU),
}


@dataclass(frozen=True, slots=True)
class Listing:
    field: str
    item_resource: Callable[[Any, Any], str]
    """(request, item) → the item's resource."""


LISTINGS: dict[str, Listing] = {
    "listScopes": Listing("scopes", lambda request, item: of_scope(item)),
    "listStreamsInScope": Listing("streams", lambda request, item: of_any_stream(item.scope, item.stream)),
    "listStreamsInScopeForTag": Listing("streams", lambda request, item: of_any_stream(item.scope, item.stream)),
    "listKeyValueTablesInScope": Listing("kvtables", lambda request, item: of_key_value_table(item.scope,
                                                                                              item.kvtName)),
}
