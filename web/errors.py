"""Errors at the HTTP edge: every failure becomes JSON with a stable code.

::

    ApiError (web)              an HTTP-level refusal (bad JSON, too large, wrong type)
    conference.errors.*         domain refusals, mapped by class to a status
    anything else               500 ``internal_error``, logged with traceback

Body: ``{"error": {"code": ..., "message": ..., "field": ...}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from conference.errors import (
    AuthenticationFailed,
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TokenRejected,
)

__all__ = ["ApiError", "error_middleware", "error_response", "validation_error"]

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[DomainError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (PermissionDenied, 403),
    (AuthenticationFailed, 401),
    (TokenRejected, 401),
]

# Pydantic error types that deserve their own code; the rest are ``invalid_field``.
_PYDANTIC_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "timezone_aware": "timezone_required",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def error_response(
    status: int, code: str, message: str, field: str | None = None, **extra: Any
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="hoinghi"'} if status == 401 else None
    return web.json_response({"error": body}, status=status, dumps=dumps, headers=headers)


def validation_error(e: ValidationError) -> web.Response:
    details = []
    for err in e.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        details.append(
            {
                "field": loc,
                "code": _PYDANTIC_CODES.get(err["type"], "invalid_field"),
                "message": err["msg"],
            }
        )
    first = details[0]
    return error_response(
        422,
        first["code"],
        f"{first['field']}: {first['message']}",
        field=first["field"],
        details=details,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status, e.code, e.message, e.field)
    except ValidationError as e:
        return validation_error(e)
    except DomainError as e:
        status = next((s for cls, s in _STATUS if isinstance(e, cls)), 400)
        return error_response(status, e.code, e.message, e.field)
    except web.HTTPException as e:
        if e.status < 400 or not request.path.startswith("/api/"):
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            e.status, "http_error"
        )
        return error_response(e.status, code, e.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the server failed; the error was logged")
