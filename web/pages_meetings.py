"""The secretariat's pages: the meetings as a list (search, dates) and as a week,
the meeting form (new and edit), and a meeting's invitations.

Pages only read (GET); what changes a meeting is done by small scripts calling
the JSON API (static/meeting_form.js, static/invitations.js), which checks roles
and, for the session cookie, the origin (web/pages_frame.py explains why no
separate CSRF token). Times are shown and typed in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from babel.dates import format_date

from conference import invitations as invitation_service
from conference import meetings as meeting_service
from conference import units as unit_service
from conference.errors import NotFound
from conference.models import MeetingKind, MeetingPublic, MeetingStatus, Role, UnitKind
from conference.timezone import LOCAL_ZONE, to_local, utcnow

from .appkeys import DATABASE, LINKS
from .i18n import N_, Language
from .pages_frame import json_for_script, page_actor, page_language, render
from .params import row_id

__all__ = [
    "KIND_TEXT",
    "ROLE_TEXT",
    "STATUS_TEXT",
    "UNIT_GROUP_TEXT",
    "add_meeting_pages",
    "local_day_bounds",
    "local_today",
    "meeting_row",
    "parse_day",
    "week_start",
]

SCHEDULERS = (Role.SECRETARIAT, Role.ADMIN)
LIST_LIMIT = 1000  # the API's largest page

STATUS_TEXT = {
    MeetingStatus.SCHEDULED: N_("Scheduled"),
    MeetingStatus.OPEN: N_("Lobby open"),
    MeetingStatus.LIVE: N_("In progress"),
    MeetingStatus.ENDED: N_("Ended"),
    MeetingStatus.CANCELLED: N_("Cancelled"),
}
KIND_TEXT = {
    MeetingKind.REGULAR: N_("Regular"),
    MeetingKind.EXTRAORDINARY: N_("Extraordinary"),
}
# Group picks of the unit chooser: every unit of one kind at once.
UNIT_GROUP_TEXT = {
    UnitKind.DEPARTMENT: N_("All departments"),
    UnitKind.DISTRICT: N_("All districts"),
    UnitKind.COMMUNE: N_("All communes"),
}
ROLE_TEXT = {
    "chair": N_("chair"),
    "participant": N_("participating site"),
    "observer": N_("observer"),
}


def parse_day(value: str | None) -> date | None:
    """A day from a query parameter ("2026-11-30"); None when absent or malformed."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def local_day_bounds(day: date) -> datetime:
    """Midnight starting ``day`` in the province's zone (an aware datetime)."""
    return datetime.combine(day, time(0, 0), tzinfo=LOCAL_ZONE)


def week_start(day: date) -> date:
    """The Monday of ``day``'s week (weeks start on Monday in Vietnam)."""
    return day - timedelta(days=day.weekday())


def local_today() -> date:
    """Today in Asia/Ho_Chi_Minh."""
    return to_local(utcnow()).date()


def _hhmm(value: datetime) -> str:
    return to_local(value).strftime("%H:%M")


def meeting_row(language: Language, m: MeetingPublic) -> dict[str, Any]:
    """What the meeting lists show of one meeting, in ``language`` and local time."""
    return {
        "id": m.id,
        "title": m.title,
        "day": language.format_date(m.starts_at),
        "starts": _hhmm(m.starts_at),
        "ends": _hhmm(m.ends_at),
        "chair_unit": m.chair_unit,
        "status": m.status.value,
        "status_text": language.gettext(STATUS_TEXT[m.status]),
        "kind_text": language.gettext(KIND_TEXT[m.kind]),
        "invited": m.invited_count,
        "editable": m.status in (MeetingStatus.SCHEDULED, MeetingStatus.OPEN),
    }


async def meetings_page(request: web.Request) -> web.StreamResponse:
    """``/meetings``: a list (``q`` in the title, ``from``/``to`` local days), a day
    (``view=day&day=``) or a week (``view=week&week=``)."""
    actor = await page_actor(request, *SCHEDULERS)
    language = page_language(request)
    view = request.query.get("view", "list")
    if view not in ("list", "day", "week"):
        view = "list"
    q = request.query.get("q", "").strip()[:300] if view == "list" else ""
    today = local_today()
    start: datetime | None
    end: datetime | None
    shown_day = parse_day(request.query.get("day")) or today
    if view == "day":
        start, end = local_day_bounds(shown_day), local_day_bounds(shown_day + timedelta(days=1))
    elif view == "week":
        monday = week_start(parse_day(request.query.get("week")) or today)
        start, end = local_day_bounds(monday), local_day_bounds(monday + timedelta(days=7))
    else:
        first = parse_day(request.query.get("from"))
        last = parse_day(request.query.get("to"))
        if first is None and last is None and not q:
            first = today
        start = local_day_bounds(first) if first else None
        end = local_day_bounds(last + timedelta(days=1)) if last else None
    async with request.app[DATABASE].read() as session:
        page = await meeting_service.list_meetings(
            session, actor, starts_from=start, starts_to=end, title=q or None, limit=LIST_LIMIT
        )
    items = page.items
    context: dict[str, Any] = {
        "view": view,
        "q": q,
        "date_from": request.query.get("from", "") if view == "list" else "",
        "date_to": request.query.get("to", "") if view == "list" else "",
        "rows": [meeting_row(language, m) for m in items],
        "truncated": page.total > len(page.items),
    }
    if view == "day":
        context.update(
            day_label=f"{format_date(shown_day, 'EEEE', locale=language.code)} "
            f"{language.format_date(shown_day)}",
            prev_day=(shown_day - timedelta(days=1)).isoformat(),
            next_day=(shown_day + timedelta(days=1)).isoformat(),
            this_day=today.isoformat(),
            is_today=shown_day == today,
        )
    if view == "week":
        days = []
        for offset in range(7):
            day = monday + timedelta(days=offset)
            days.append(
                {
                    "iso": day.isoformat(),
                    "weekday": format_date(day, "EEEE", locale=language.code),
                    "date": language.format_date(day),
                    "today": day == today,
                    "meetings": [
                        meeting_row(language, m)
                        for m in items
                        if to_local(m.starts_at).date() == day
                    ],
                }
            )
        context.update(
            days=days,
            week_label=f"{language.format_date(monday)} – "
            f"{language.format_date(monday + timedelta(days=6))}",
            prev_week=(monday - timedelta(days=7)).isoformat(),
            next_week=(monday + timedelta(days=7)).isoformat(),
            this_week=week_start(today).isoformat(),
        )
    return render(request, language, "meetings.html", actor=actor, **context)


def _flatten(nodes: list[dict[str, Any]], depth: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in nodes:
        out.append(
            {
                "code": node["code"],
                "name": node["name"],
                "kind": node["kind"],
                "depth": depth,
                "indent": "\u00a0\u00a0" * depth,  # a <select>'s options take no padding
            }
        )
        out += _flatten(node["children"], depth + 1)
    return out


def _meeting_id(request: web.Request) -> int:
    value = row_id(request.match_info["meeting_id"])
    if value is None:
        raise web.HTTPNotFound()
    return value


async def _not_found(request: web.Request, actor: Any) -> web.Response:
    language = page_language(request)
    return render(
        request,
        language,
        "not_found.html",
        status=404,
        actor=actor,
    )


async def meeting_form_page(request: web.Request) -> web.StreamResponse:
    """``/meetings/new`` and ``/meetings/{id}/edit``: the form; meeting_form.js saves it."""
    actor = await page_actor(request, *SCHEDULERS)
    language = page_language(request)
    editing = "meeting_id" in request.match_info
    async with request.app[DATABASE].read() as session:
        units = _flatten(await unit_service.unit_tree(session))
        meeting: MeetingPublic | None = None
        invited: list[str] = []
        if editing:
            try:
                row = await meeting_service.get_meeting(session, _meeting_id(request))
            except NotFound:
                return await _not_found(request, actor)
            meeting = await meeting_service.meeting_public(session, row)
            invitations = await invitation_service.list_invitations(session, row.id or 0, None)
            invited = [i.unit for i in invitations if not i.revoked and i.role.value != "chair"]
    tomorrow = local_today() + timedelta(days=1)
    values = {
        "title": meeting.title if meeting else "",
        "agenda": list(meeting.agenda) if meeting and meeting.agenda else [""],
        "date": to_local(meeting.starts_at).date().isoformat() if meeting else tomorrow.isoformat(),
        "starts": _hhmm(meeting.starts_at) if meeting else "08:00",
        "ends": _hhmm(meeting.ends_at) if meeting else "10:00",
        "chair_unit": meeting.chair_unit if meeting else "",
        "kind": meeting.kind.value if meeting else MeetingKind.REGULAR.value,
        "recording": meeting.recording if meeting else True,
    }
    kinds_present = {u["kind"] for u in units}
    groups = [
        {"kind": kind.value, "label": language.gettext(text)}
        for kind, text in UNIT_GROUP_TEXT.items()
        if kind.value in kinds_present
    ]
    page = {
        "mode": "edit" if editing else "new",
        "meeting_id": meeting.id if meeting else None,
        "invited": invited,
        "editable": meeting is None
        or meeting.status in (MeetingStatus.SCHEDULED, MeetingStatus.OPEN),
    }
    return render(
        request,
        language,
        "meeting_form.html",
        actor=actor,
        meeting=meeting,
        values=values,
        units=units,
        invited=set(invited),
        groups=groups,
        kinds=[(k.value, language.gettext(t)) for k, t in KIND_TEXT.items()],
        page_json=json_for_script(page),
    )


async def invitations_page(request: web.Request) -> web.StreamResponse:
    """``/meetings/{id}/invitations``: each unit's link (copy, .ics), revoke, re-issue;
    reschedule and cancel the meeting."""
    actor = await page_actor(request, *SCHEDULERS)
    language = page_language(request)
    async with request.app[DATABASE].read() as session:
        try:
            row = await meeting_service.get_meeting(session, _meeting_id(request))
        except NotFound:
            return await _not_found(request, actor)
        meeting = await meeting_service.meeting_public(session, row)
        invitations = await invitation_service.list_invitations(
            session, meeting.id, request.app[LINKS]
        )
    rows = [
        {
            "unit": i.unit,
            "unit_name": i.unit_name,
            "role_text": language.gettext(ROLE_TEXT.get(i.role.value, i.role.value)),
            "revoked": i.revoked,
            "join_url": i.join_url or "",
            "ics": f"/api/meetings/{meeting.id}/invitations/{i.unit}/calendar.ics",
        }
        for i in invitations
    ]
    editable = meeting.status in (MeetingStatus.SCHEDULED, MeetingStatus.OPEN)
    page = {"meeting_id": meeting.id, "editable": editable}
    return render(
        request,
        language,
        "invitations.html",
        actor=actor,
        meeting=meeting,
        row=meeting_row(language, meeting),
        rows=rows,
        editable=editable,
        created=request.query.get("created") == "1",
        date=to_local(meeting.starts_at).date().isoformat(),
        starts=_hhmm(meeting.starts_at),
        ends=_hhmm(meeting.ends_at),
        page_json=json_for_script(page),
    )


def add_meeting_pages(app: web.Application) -> None:
    app.router.add_get("/meetings", meetings_page)
    app.router.add_get("/meetings/new", meeting_form_page)
    app.router.add_get(r"/meetings/{meeting_id:\d+}/edit", meeting_form_page)
    app.router.add_get(r"/meetings/{meeting_id:\d+}/invitations", invitations_page)
