"""The error wrapper every gRPC handler of the controller goes through.

No Python exception may reach grpcio (it would answer UNKNOWN, which both clients retry and which
makes the Rust client reset its channel): missing entities → NOT_FOUND, bad arguments →
INVALID_ARGUMENT, lease bounds → UNKNOWN (as Pravega answers), lost conditional updates →
FAILED_PRECONDITION, segment store down → UNAVAILABLE, anything else → INTERNAL with the message.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from anabranch.controller.errors import (
    IllegalStateError,
    InvalidArgumentError,
    NotFoundError,
    SegmentStoreUnavailableError,
    WriteConflictError,
)
from anabranch.controller.transactions import LeaseOutOfRangeError
from anabranch.controller.validation import check_request

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, LeaseOutOfRangeError):
        return grpc.StatusCode.UNKNOWN, str(exc)
    if isinstance(exc, InvalidArgumentError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, WriteConflictError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, SegmentStoreUnavailableError):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, IllegalStateError):
        return grpc.StatusCode.INTERNAL, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


MAX_DETAILS = 1000
"""Characters of a status message: gRPC sends it percent-encoded in a trailer, which clients cap (8 KiB by default),
so a message quoting a long name could make the reply itself fail."""


def shorten_details(message: str) -> str:
    return message if len(message) <= MAX_DETAILS else message[:MAX_DETAILS] + "..."


def rpc(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            check_request(handler.__name__, request)
            return await handler(self, request, context)
        except Exception as exc:
            code, message = status_for(exc)
            if code is grpc.StatusCode.INTERNAL:
                log.exception("rpc %s failed", handler.__name__)
            else:
                log.info("rpc %s: %s %s", handler.__name__, code.name, message)
        await context.abort(code, shorten_details(message))

    return wrapper  # type: ignore[return-value]


def is_rust_client(context: grpc.aio.ServicerContext) -> bool:
    """Rust (tonic) decodes the Java-only STREAM_SEALED as SUCCESS; it must get FAILURE instead."""
    agent = dict(context.invocation_metadata() or ()).get("user-agent", "")
    return not agent or "tonic" in str(agent)
