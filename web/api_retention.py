"""The recording retention policy (administrators only): read it with what the next
sweep would delete, set it, and sweep now.

The period is stored in the database (``conference.settings_store``); the
configuration's ``recording_retention_days`` is the default until an
administrator sets one. A period that is not a whole number of days from 0 to
``MAX_RETENTION_DAYS`` is refused with 422, like every field error, and a stable code
(``retention_days_not_integer``, ``retention_days_negative``,
``retention_days_too_large``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from conference.models import Role
from conference.settings_store import MAX_RETENTION_DAYS, set_retention_days
from conference.timezone import utcnow

from .api import Api, Call, json_ok, roles
from .appkeys import CONFIG, DATABASE, RECORDINGS

__all__ = ["RetentionIn", "RetentionOut", "SweepOut", "add_retention_routes"]

_ADMIN = roles(Role.ADMIN)


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Any JSON here: the handler checks it, so every wrong value gets its own code.
    days: Any = Field(
        json_schema_extra={
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_RETENTION_DAYS,
            "description": "days a recording is kept; 0 keeps recordings forever",
        }
    )


class RetentionOut(BaseModel):
    days: int  # the period in force
    default_days: int  # the configuration's, used while none is stored
    stored: bool
    max_days: int
    expired_recordings: int  # what a sweep now would delete
    expired_bytes: int


class SweepOut(BaseModel):
    days: int
    purged: list[int]
    purged_bytes: int
    failed: int  # expired, but their files could not be deleted


async def retention_out(app: web.Application) -> RetentionOut:
    service = app[RECORDINGS]
    policy = await service.retention()
    preview = await service.retention_preview(utcnow())
    return RetentionOut(
        days=policy.days,
        default_days=policy.default_days,
        stored=policy.stored,
        max_days=MAX_RETENTION_DAYS,
        expired_recordings=preview.recordings,
        expired_bytes=preview.size_bytes,
    )


def add_retention_routes(api: Api) -> None:
    @api.route(
        "GET",
        "/api/retention",
        summary="The recording retention period and what a sweep now would delete",
        tag="retention",
        roles=_ADMIN,
        response=RetentionOut,
    )
    async def get_retention(request: web.Request, call: Call) -> web.StreamResponse:
        return json_ok(await retention_out(request.app))

    @api.route(
        "PUT",
        "/api/retention",
        summary="Set the recording retention period in days (0: keep forever)",
        tag="retention",
        roles=_ADMIN,
        body=RetentionIn,
        response=RetentionOut,
        errors=(422,),
    )
    async def set_retention(request: web.Request, call: Call) -> web.StreamResponse:
        default = request.app[CONFIG].recording_retention_days
        async with request.app[DATABASE].write() as session:
            await set_retention_days(session, call.who, call.body.days, default)
        return json_ok(await retention_out(request.app))

    @api.route(
        "POST",
        "/api/retention/sweep",
        summary="Delete now the recordings past the retention period (not marked keep)",
        tag="retention",
        roles=_ADMIN,
        response=SweepOut,
    )
    async def sweep(request: web.Request, call: Call) -> web.StreamResponse:
        done = await request.app[RECORDINGS].sweep(utcnow(), call.who)
        return json_ok(
            SweepOut(
                days=done.days,
                purged=done.purged,
                purged_bytes=done.size_bytes,
                failed=done.failed,
            )
        )
