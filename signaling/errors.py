"""Errors of the signaling side, classified once so the session can act on them.

::

    SignalingError          base
    ├── ProtocolViolation   the peer broke the wire protocol: close with ``close_code``
    └── RequestRefused      a well-formed request that cannot be granted: an ``error``
                            message with a stable ``code``; the connection stays

Anything else escaping a handler is a bug: the session logs it with its traceback
and closes with 1011.
"""

from __future__ import annotations

__all__ = ["ProtocolViolation", "RequestRefused", "SignalingError"]


class SignalingError(Exception):
    code: str = "error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ProtocolViolation(SignalingError):
    """Close the connection with ``close_code`` (RFC 6455 §7.4) and ``message`` as reason."""

    def __init__(self, code: str, message: str, close_code: int = 1002) -> None:
        super().__init__(code, message)
        self.close_code = close_code


class RequestRefused(SignalingError):
    """Answer with an ``error`` message; optionally close afterwards with ``close_code``."""

    def __init__(self, code: str, message: str, close_code: int | None = None) -> None:
        super().__init__(code, message)
        self.close_code = close_code
