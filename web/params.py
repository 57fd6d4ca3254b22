"""Query-string parameters, parsed strictly: a bad value is a 422 naming the parameter."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TypeVar

from aiohttp import web

from .errors import ApiError

__all__ = ["datetime_param", "enum_list_param", "int_param", "row_id", "str_param"]

E = TypeVar("E", bound=Enum)

ROW_ID_LIMIT = 2**31  # ids are PostgreSQL integers


def row_id(text: str) -> int | None:
    """A database id from a path segment: ASCII digits below 2**31, else None.

    Route patterns stay plain (``{recording_id}``, no regex) so the OpenAPI probes
    reach the handler; a value no row can have is "not found", never a 500 from
    the database overflowing its integer.
    """
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if value < ROW_ID_LIMIT else None


def str_param(request: web.Request, name: str, *, max_length: int = 200) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_length:
        raise ApiError(422, "invalid_field", f"{name} is too long", field=name)
    return value


def datetime_param(request: web.Request, name: str) -> datetime | None:
    value = str_param(request, name, max_length=64)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise ApiError(
            422, "invalid_field", f"{name} is not an ISO 8601 date-time", field=name
        ) from e
    if parsed.tzinfo is None:
        raise ApiError(
            422, "timezone_required", f"{name} needs a time zone offset (e.g. +07:00)", field=name
        )
    return parsed


def int_param(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        parsed = int(value)
    except ValueError as e:
        raise ApiError(422, "invalid_field", f"{name} must be an integer", field=name) from e
    if not low <= parsed <= high:
        raise ApiError(422, "invalid_field", f"{name} must be between {low} and {high}", field=name)
    return parsed


def enum_list_param(request: web.Request, name: str, enum: type[E]) -> list[E]:
    value = str_param(request, name)
    if value is None:
        return []
    out: list[E] = []
    for part in value.split(","):
        try:
            out.append(enum(part))
        except ValueError as e:
            allowed = ", ".join(str(m.value) for m in enum)
            raise ApiError(
                422, "invalid_field", f"{name}: {part!r} is not one of {allowed}", field=name
            ) from e
    return out
