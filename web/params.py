"""Query-string parameters, parsed strictly: a bad value is a 422 naming the parameter."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TypeVar

from aiohttp import web

from .errors import ApiError

__all__ = ["datetime_param", "enum_list_param", "int_param", "str_param"]

E = TypeVar("E", bound=Enum)


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
