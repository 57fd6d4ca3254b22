"""Errors of the domain, classified once so the edges can map them.

::

    DomainError                 base; ``code`` is stable, ``message`` is for people
    ├── InvalidInput            a field's value is wrong (400); ``field`` names it
    ├── NotFound                the object does not exist (404)
    ├── Conflict                the change contradicts stored state (409)
    ├── PermissionDenied        the actor may not do this (403)
    ├── AuthenticationFailed    who the caller is could not be established (401)
    └── TokenRejected           a signed token was refused (401); ``code`` is the reason

The web layer turns each into an HTTP status and a JSON body; the signaling
layer turns them into ``error`` messages. Anything that is not a
``DomainError`` is a bug and is answered with 500 and logged.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "Conflict",
    "DomainError",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "TokenRejected",
]


class DomainError(Exception):
    """Base of every expected failure; ``code`` is part of the API contract."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field


class InvalidInput(DomainError):
    code = "invalid_field"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class PermissionDenied(DomainError):
    code = "forbidden"


class AuthenticationFailed(DomainError):
    code = "unauthenticated"


class TokenRejected(DomainError):
    """A token was refused. ``code`` is one of ``tokens.REJECTION_CODES``."""

    code = "token_invalid"
