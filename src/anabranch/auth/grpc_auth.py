"""The controller's authentication and authorization: one grpc.aio server interceptor in front of every rpc.

For each call it authenticates the ``authorization`` metadata with the ``HandlerRegistry`` (refusal:
UNAUTHENTICATED), checks the rpc's rule from ``rpc_rules.RULES`` (refusal: PERMISSION_DENIED; an rpc without a
rule is refused too), runs the rpc, then fills the reply's ``delegationToken`` with a signed token for the
request's stream and filters listings down to what the caller may read. The servicer itself knows nothing
about auth. ``_system`` and controller metadata tables never get a user token.

Token permission (``getDelegationToken`` and every reply that carries a token): READ for access operation
READ or NONE; READ_UPDATE for WRITE/READ_WRITE (refused without the write permission); for UNSPECIFIED/ANY
(what the Rust client sends) the strongest the caller holds, READ_UPDATE or READ. Pravega demands READ_UPDATE
for UNSPECIFIED, which would stop read-only users of older clients from reading at all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from anabranch.auth.errors import AuthenticationFailedError, AuthError, PermissionDeniedError
from anabranch.auth.handlers import HandlerRegistry, Principal
from anabranch.auth.permissions import (
    Permission,
    of_any_stream,
    of_key_value_table,
    of_stream,
    reader_group_of,
    write_permission_for,
)
from anabranch.auth.rpc_rules import LISTINGS, RULES, Rule
from anabranch.auth.tokens import TokenSigner
from anabranch.model.names import SYSTEM_SCOPE, TABLES_TOKEN
from anabranch.protocol import controller_pb2 as pb

log = logging.getLogger(__name__)

_ACCESS = pb.StreamInfo.AccessOperation
_READ_ONLY_ACCESS = frozenset({_ACCESS.READ, _ACCESS.NONE})
_WRITE_ACCESS = frozenset({_ACCESS.WRITE, _ACCESS.READ_WRITE})


class ControllerAuthorizer:
    """The checks, separate from gRPC plumbing so they are tested directly."""

    def __init__(self, handlers: HandlerRegistry, signer: TokenSigner) -> None:
        self.handlers = handlers
        self.signer = signer

    def authenticate(self, metadata: Any) -> Principal:
        authorization = None
        for key, value in metadata or ():
            if key.lower() == "authorization":
                authorization = value.decode() if isinstance(value, bytes) else str(value)
        return self.handlers.authenticate(authorization)

    def permission(self, principal: Principal, resource: str) -> Permission:
        return self.handlers.authorize(resource, principal)

    def require(self, principal: Principal, resource: str, needed: Permission) -> Permission:
        held = self.permission(principal, resource)
        if held < needed:
            raise PermissionDeniedError(f"user {principal.name!r} needs {needed.name} on {resource} "
                                        f"(has {held.name}); grant it in the password file's ACL")
        return held

    def check(self, method: str, principal: Principal, request: Any) -> bool:
        """Authorize ``method``; True when the reply must be filtered to readable entries (a listing)."""
        rule = RULES.get(method)
        if rule is None:
            raise PermissionDeniedError(f"rpc {method} is not authorized for anyone")
        if rule.resource is None:
            return False
        resource, needed = rule.resource(request), rule.needed(request)
        if method in LISTINGS:
            return self.permission(principal, resource) < needed
        if method == "getDelegationToken" and self._held(principal, request.scope, request.stream) >= needed:
            return False
        self.require(principal, resource, needed)
        return False

    def _held(self, principal: Principal, scope: str, stream: str) -> Permission:
        """The caller's permission on a stream's data: its resource, or for a plain name also the key-value
        table of that name (tables and streams share segment names, and clients ask tokens for both alike)."""
        held = self.permission(principal, of_any_stream(scope, stream))
        if not stream.startswith("_") and reader_group_of(stream) is None:
            held = max(held, self.permission(principal, of_key_value_table(scope, stream)))
        return held

    def token_for(self, method: str, principal: Principal, request: Any, rule: Rule) -> str:
        assert rule.token is not None
        scope, stream = rule.token(request)
        if scope == SYSTEM_SCOPE or stream == TABLES_TOKEN:
            raise PermissionDeniedError(f"{scope}/{stream} is internal to Anabranch; no user may access it")
        if method == "getCurrentSegmentsKeyValueTable":
            granted = Permission.READ_UPDATE
        else:
            held = self._held(principal, scope, stream)
            can_write = held >= write_permission_for(stream)
            access = getattr(request, "accessOperation", _ACCESS.UNSPECIFIED) if method == "getDelegationToken" \
                else _ACCESS.UNSPECIFIED
            if access in _READ_ONLY_ACCESS:
                granted = Permission.READ
            elif access in _WRITE_ACCESS and not can_write:
                raise PermissionDeniedError(f"user {principal.name!r} may not write {scope}/{stream}; "
                                            f"needs {write_permission_for(stream).name} on "
                                            f"{of_any_stream(scope, stream)}")
            else:
                granted = Permission.READ_UPDATE if can_write else Permission.READ
        return self.signer.issue(principal.name, {of_stream(scope, stream): granted})

    def filter_listing(self, method: str, principal: Principal, request: Any, response: Any) -> None:
        listing = LISTINGS[method]
        items = getattr(response, listing.field)
        keep = [item for item in items
                if self.permission(principal, listing.item_resource(request, item)) >= Permission.READ]
        del items[:]
        items.extend(keep)


def _status(exc: AuthError) -> grpc.StatusCode:
    return grpc.StatusCode.UNAUTHENTICATED if isinstance(exc, AuthenticationFailedError) \
        else grpc.StatusCode.PERMISSION_DENIED


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every unary rpc handler with ``ControllerAuthorizer``'s checks."""

    def __init__(self, authorizer: ControllerAuthorizer) -> None:
        self.authorizer = authorizer

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = str(handler_call_details.method).rsplit("/", 1)[-1]  # type: ignore[attr-defined]
        inner = handler.unary_unary
        authorizer = self.authorizer

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = None
            try:
                principal = authorizer.authenticate(context.invocation_metadata())
                filter_reply = authorizer.check(method, principal, request)
                rule = RULES[method]
                if rule.token is not None:
                    token = authorizer.token_for(method, principal, request, rule)
            except AuthError as exc:
                log.info("rpc %s refused: %s", method, exc)
                await context.abort(_status(exc), str(exc))
            response = await inner(request, context)
            if filter_reply:
                authorizer.filter_listing(method, principal, request, response)
            if token is not None and hasattr(response, "delegationToken"):
                response.delegationToken = token
            return response

        return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)

