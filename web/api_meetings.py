"""Meetings and their invitations: schedule, change, reschedule, cancel, list; invite,
list join links, revoke, re-issue; the iCalendar file of one unit's invitation."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from conference import invitations as invitation_service
from conference import meetings as meeting_service
from conference.calendar import meeting_ics
from conference.errors import NotFound
from conference.models import (
    InvitationCreate,
    MeetingCreate,
    MeetingPublic,
    MeetingStatus,
    MeetingUpdate,
    Role,
    Unit,
)
from conference.slugs import ascii_slug
from conference.timezone import to_local
from signaling.bus import BusEvent

from .api import SIGNED_IN, Api, Call, QueryParam, json_ok, roles
from .appkeys import BUS, CONFIG, DATABASE, LINKS, ROOMS
from .params import datetime_param, enum_list_param, int_param, str_param
from .schemas import (
    CancelRequest,
    InvitationsOut,
    MeetingPageOut,
    RescheduleRequest,
    ScheduledOut,
    WarningOut,
)

__all__ = ["add_meeting_routes"]

_SCHEDULERS = roles(Role.SECRETARIAT, Role.ADMIN)
_READERS = roles(Role.SECRETARIAT, Role.ADMIN, Role.CLERK)
_ID = r"{meeting_id:\d+}"


def _meeting_id(request: web.Request) -> int:
    return int(request.match_info["meeting_id"])


def _scheduled(result: meeting_service.Scheduled) -> ScheduledOut:
    return ScheduledOut(
        meeting=result.meeting,
        warnings=[WarningOut(**w.as_dict()) for w in result.warnings],
    )


async def _announce(request: web.Request, name: str, meeting: MeetingPublic, **extra: Any) -> None:
    """Tell the invited units' systems (webhooks follow the bus) of a committed change:
    ``meeting.cancelled`` or ``meeting.rescheduled``, with the units it concerns."""
    async with request.app[DATABASE].read() as session:
        units = await meeting_service.invited_unit_codes(session, meeting.id)
    data: dict[str, Any] = {
        "meeting_id": meeting.id,
        "title": meeting.title,
        "starts_at": to_local(meeting.starts_at).isoformat(),
        "ends_at": to_local(meeting.ends_at).isoformat(),
        "units": units,
        **extra,
    }
    request.app[BUS].publish(BusEvent(name, data))


async def _announce_reschedule(
    request: web.Request, result: meeting_service.Scheduled, reason: str | None
) -> None:
    if result.previous is None:
        return
    starts, ends = result.previous
    await _announce(
        request,
        "meeting.rescheduled",
        result.meeting,
        reason=reason,
        previous_starts_at=to_local(starts).isoformat(),
        previous_ends_at=to_local(ends).isoformat(),
    )


def add_meeting_routes(api: Api) -> None:
    @api.route(
        "GET",
        "/api/meetings",
        summary="List meetings, filtered",
        tag="meetings",
        roles=SIGNED_IN,
        response=MeetingPageOut,
        query=[
            QueryParam(
                "from",
                "meetings still running after this time (ISO 8601 with offset)",
                {"type": "string", "format": "date-time"},
            ),
            QueryParam(
                "to",
                "meetings starting before this time (ISO 8601 with offset)",
                {"type": "string", "format": "date-time"},
            ),
            QueryParam("unit", "only meetings this unit is invited to or chairs"),
            QueryParam("status", "comma-separated: scheduled,open,live,ended,cancelled"),
            QueryParam("q", "words in the title, ignoring case and Vietnamese tone marks"),
            QueryParam("limit", "page size, 1 to 1000 (default 100)", {"type": "integer"}),
            QueryParam("offset", "rows to skip", {"type": "integer"}),
        ],
    )
    async def list_meetings(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].read() as session:
            page = await meeting_service.list_meetings(
                session,
                call.who,
                starts_from=datetime_param(request, "from"),
                starts_to=datetime_param(request, "to"),
                unit_code=str_param(request, "unit", max_length=32),
                statuses=enum_list_param(request, "status", MeetingStatus),
                title=str_param(request, "q", max_length=300),
                limit=int_param(request, "limit", default=100, low=1, high=1000),
                offset=int_param(request, "offset", default=0, low=0, high=10_000_000),
            )
        return json_ok(
            MeetingPageOut(items=page.items, total=page.total, limit=page.limit, offset=page.offset)
        )

    @api.route(
        "POST",
        "/api/meetings",
        summary="Schedule a meeting and invite units",
        tag="meetings",
        roles=_SCHEDULERS,
        body=MeetingCreate,
        response=ScheduledOut,
        status=201,
        errors=(409, 422),
    )
    async def create(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            result = await meeting_service.create_meeting(session, call.who, call.body)
        return json_ok(_scheduled(result), status=201)

    @api.route(
        "GET",
        f"/api/meetings/{_ID}",
        summary="One meeting",
        tag="meetings",
        roles=SIGNED_IN,
        response=MeetingPublic,
        errors=(404,),
    )
    async def get(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].read() as session:
            meeting = await meeting_service.get_meeting(
                session, _meeting_id(request), actor=call.who
            )
            return json_ok(await meeting_service.meeting_public(session, meeting))

    @api.route(
        "PATCH",
        f"/api/meetings/{_ID}",
        summary="Change a scheduled meeting",
        tag="meetings",
        roles=_SCHEDULERS,
        body=MeetingUpdate,
        response=ScheduledOut,
        errors=(404, 409, 422),
    )
    async def update(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            result = await meeting_service.update_meeting(
                session, call.who, _meeting_id(request), call.body
            )
        await _announce_reschedule(request, result, None)
        return json_ok(_scheduled(result))

    @api.route(
        "POST",
        f"/api/meetings/{_ID}/reschedule",
        summary="Move a meeting to new times",
        tag="meetings",
        roles=_SCHEDULERS,
        body=RescheduleRequest,
        response=ScheduledOut,
        errors=(404, 409, 422),
    )
    async def reschedule(request: web.Request, call: Call) -> web.StreamResponse:
        data: RescheduleRequest = call.body
        update = MeetingUpdate(starts_at=data.starts_at, ends_at=data.ends_at)
        async with request.app[DATABASE].write() as session:
            result = await meeting_service.update_meeting(
                session, call.who, _meeting_id(request), update, reason=data.reason
            )
        await _announce_reschedule(request, result, data.reason)
        return json_ok(_scheduled(result))

    @api.route(
        "POST",
        f"/api/meetings/{_ID}/cancel",
        summary="Cancel a meeting",
        tag="meetings",
        roles=_SCHEDULERS,
        body=CancelRequest,
        response=MeetingPublic,
        errors=(404, 409),
    )
    async def cancel(request: web.Request, call: Call) -> web.StreamResponse:
        data: CancelRequest = call.body
        async with request.app[DATABASE].write() as session:
            before = await meeting_service.get_meeting(session, _meeting_id(request))
            cancelled_now = before.status is not MeetingStatus.CANCELLED
            meeting = await meeting_service.cancel_meeting(
                session, call.who, _meeting_id(request), data.reason
            )
        # Whoever waits in an open lobby is told at once, not at their next message.
        request.app[ROOMS].end_room(meeting.id, "meeting cancelled")
        if cancelled_now:
            await _announce(request, "meeting.cancelled", meeting, reason=data.reason)
        return json_ok(meeting)

    @api.route(
        "GET",
        f"/api/meetings/{_ID}/invitations",
        summary="Invitations with their join links",
        tag="invitations",
        roles=_READERS,
        response=InvitationsOut,
        errors=(404,),
    )
    async def invitations(request: web.Request, call: Call) -> web.StreamResponse:
        # Clerks see who was invited; only schedulers see the links themselves.
        links = request.app[LINKS] if call.who.has(Role.SECRETARIAT, Role.ADMIN) else None
        async with request.app[DATABASE].read() as session:
            items = await invitation_service.list_invitations(session, _meeting_id(request), links)
        return json_ok(InvitationsOut(invitations=items))

    @api.route(
        "POST",
        f"/api/meetings/{_ID}/invitations",
        summary="Invite units",
        tag="invitations",
        roles=_SCHEDULERS,
        body=InvitationCreate,
        response=InvitationsOut,
        status=201,
        errors=(404, 409, 422),
    )
    async def invite(request: web.Request, call: Call) -> web.StreamResponse:
        data: InvitationCreate = call.body
        async with request.app[DATABASE].write() as session:
            result = await invitation_service.invite_units(
                session, call.who, _meeting_id(request), data.units, data.role, request.app[LINKS]
            )
        return json_ok(
            InvitationsOut(
                invitations=result.invitations,
                warnings=[WarningOut(**w.as_dict()) for w in result.warnings],
            ),
            status=201,
        )

    @api.route(
        "POST",
        f"/api/meetings/{_ID}/invitations/{{unit}}/revoke",
        summary="Revoke a unit's invitation (its link stops working)",
        tag="invitations",
        roles=_SCHEDULERS,
        errors=(404, 409),
    )
    async def revoke(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            inv = await invitation_service.revoke_invitation(
                session, call.who, _meeting_id(request), request.match_info["unit"]
            )
        return json_ok(inv)

    @api.route(
        "POST",
        f"/api/meetings/{_ID}/invitations/{{unit}}/reissue",
        summary="Issue a new join link (the old one stops working)",
        tag="invitations",
        roles=_SCHEDULERS,
        errors=(404, 409),
    )
    async def reissue(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            inv = await invitation_service.reissue_invitation(
                session,
                call.who,
                _meeting_id(request),
                request.match_info["unit"],
                request.app[LINKS],
            )
        return json_ok(inv)

    @api.route(
        "GET",
        f"/api/meetings/{_ID}/invitations/{{unit}}/calendar.ics",
        summary="iCalendar event of one unit's invitation, with its join link",
        tag="invitations",
        roles=SIGNED_IN,
        content_type="text/calendar",
        errors=(403, 404),
    )
    async def ics(request: web.Request, call: Call) -> web.StreamResponse:
        actor = call.who
        async with request.app[DATABASE].read() as session:
            meeting, inv, unit = await invitation_service.get_invitation(
                session, _meeting_id(request), request.match_info["unit"]
            )
            if not actor.has(Role.SECRETARIAT, Role.ADMIN) and actor.unit_id != unit.id:
                raise NotFound("no such invitation for your unit", code="not_invited")
            chair = await session.get(Unit, meeting.chair_unit_id)
            assert chair is not None
        links = request.app[LINKS]
        join_url = links.url(meeting, inv, unit.code) if inv.revoked_at is None else None
        body = meeting_ics(
            meeting,
            chair_name=chair.name,
            unit_name=unit.name,
            join_url=join_url,
            host=request.app[CONFIG].host,
        )
        filename = f"hoinghi-{meeting.id}-{ascii_slug(meeting.title)}-{unit.code}.ics"
        return web.Response(
            body=body,
            content_type="text/calendar",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
