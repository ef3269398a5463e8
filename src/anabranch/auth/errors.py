"""Errors of authentication, authorization and delegation tokens (server side)."""

from __future__ import annotations

from anabranch.errors import AnabranchError, ConfigError


class AuthError(AnabranchError):
    """Base of the refusals of the auth layer."""


class AuthenticationFailedError(AuthError):
    """The credentials are missing, malformed or wrong (gRPC UNAUTHENTICATED)."""


class PermissionDeniedError(AuthError):
    """The caller is known but lacks the permission on the resource (gRPC PERMISSION_DENIED)."""


class TokenError(AuthError):
    """A delegation token is missing, forged, malformed or does not cover the resource (TOKEN_CHECK_FAILED)."""


class TokenExpiredError(TokenError):
    """A delegation token is past its expiry (TOKEN_EXPIRED): fetch a new one from the controller."""

    retriable = True


class AuthConfigError(ConfigError):
    """A password file, ACL or signing key is unusable; the message names the file and the problem."""
