"""The operators' page (chairs and admins too): ``/today``, the meetings of the
account's unit today and in the next days, each with the unit's own join link
(the join page runs the device check before entering the room), and before the
start a countdown, computed here and kept live by static/today.js.

Days are local days in Asia/Ho_Chi_Minh. The unit's invitations are read with the
revoked ones, so a revoked link says so instead of the meeting vanishing.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlmodel import col, select

from conference.meetings import MeetingNotice, meeting_notices
from conference.models import Invitation, Meeting, MeetingStatus, Role, Unit
from conference.timezone import to_local, to_utc, utcnow

from .appkeys import DATABASE, LINKS
from .i18n import N_, Language
from .pages_frame import page_actor, page_language, render
from .pages_meetings import ROLE_TEXT, STATUS_TEXT, local_day_bounds

__all__ = ["NEXT_DAYS", "add_today_pages", "countdown_text"]

TODAY_ROLES = (Role.OPERATOR, Role.CHAIR, Role.ADMIN)
NEXT_DAYS = 7
# A unit may still join these; an ended or cancelled meeting has no link to offer.
JOINABLE = (MeetingStatus.SCHEDULED, MeetingStatus.OPEN, MeetingStatus.LIVE)

# The same msgids as static/today.js, which replaces {n}, {h} and {m} the same way.
STARTS_IN_ONE = N_("Starts in 1 minute")
STARTS_IN_MINUTES = N_("Starts in {n} minutes")
STARTS_IN_HOURS = N_("Starts in {h} h {m} min")


def countdown_text(language: Language, starts_at: datetime, now: datetime) -> str:
    """ "Starts in 12 minutes" (whole minutes, rounded up); "" once the start has come."""
    seconds = (starts_at - now).total_seconds()
    if seconds <= 0:
        return ""
    minutes = math.ceil(seconds / 60)
    if minutes == 1:
        return language.gettext(STARTS_IN_ONE)
    if minutes < 60:
        return language.gettext(STARTS_IN_MINUTES).replace("{n}", str(minutes))
    hours, rest = divmod(minutes, 60)
    return language.gettext(STARTS_IN_HOURS).replace("{h}", str(hours)).replace("{m}", str(rest))


CANCELLED_NOTICE = N_("Cancelled by the Office on {at}.")
MOVED_NOTICE = N_("Moved by the Office on {at}; it was {was}.")
REASON_NOTICE = N_("Reason: {reason}")


def _notice_text(language: Language, notice: MeetingNotice | None, status: MeetingStatus) -> str:
    """What the unit is told of a cancel or a reschedule ("" when neither happened;
    a reschedule notice is no longer shown once the meeting was cancelled after it)."""
    if notice is None:
        return ""
    at = language.format_datetime(notice.at)
    if notice.kind == "cancelled":
        text = language.gettext(CANCELLED_NOTICE).replace("{at}", at)
    elif status is MeetingStatus.CANCELLED or notice.from_starts_at is None:
        return ""
    else:
        was = language.format_datetime(notice.from_starts_at)
        text = language.gettext(MOVED_NOTICE).replace("{at}", at).replace("{was}", was)
    if notice.reason:
        text += " " + language.gettext(REASON_NOTICE).replace("{reason}", notice.reason)
    return text


async def today_page(request: web.Request) -> web.StreamResponse:
    """``/today``: the unit's meetings today and in the next :data:`NEXT_DAYS` days."""
    actor = await page_actor(request, *TODAY_ROLES)
    language = page_language(request)
    now = utcnow()
    today = to_local(now).date()
    if actor.unit_id is None:
        return render(request, language, "today.html", actor=actor, no_unit=True)
    start = local_day_bounds(today)
    tomorrow = local_day_bounds(today + timedelta(days=1))
    end = local_day_bounds(today + timedelta(days=NEXT_DAYS + 1))
    query = (
        select(Meeting, Invitation, Unit)
        .join(Invitation, col(Invitation.meeting_id) == col(Meeting.id))
        .join(Unit, col(Unit.id) == col(Invitation.unit_id))
        .where(
            col(Invitation.unit_id) == actor.unit_id,
            col(Meeting.ends_at) > to_utc(start),
            col(Meeting.starts_at) < to_utc(end),
        )
        .order_by(col(Meeting.starts_at), col(Meeting.id))
    )
    links = request.app[LINKS]
    today_rows: list[dict[str, Any]] = []
    later_rows: list[dict[str, Any]] = []
    async with request.app[DATABASE].read() as session:
        rows = (await session.exec(query)).all()
        chair_ids = {meeting.chair_unit_id for meeting, _, _ in rows}
        chairs = {
            u.id: u.name
            for u in (await session.exec(select(Unit).where(col(Unit.id).in_(chair_ids)))).all()
        }
        notices = await meeting_notices(session, [m.id for m, _, _ in rows if m.id is not None])
        unit_name = ""
        for meeting, invitation, unit in rows:
            unit_name = unit.name
            revoked = invitation.revoked_at is not None
            joinable = not revoked and meeting.status in JOINABLE
            row = {
                "id": meeting.id,
                "title": meeting.title,
                "day": language.format_date(meeting.starts_at),
                "starts": to_local(meeting.starts_at).strftime("%H:%M"),
                "ends": to_local(meeting.ends_at).strftime("%H:%M"),
                "starts_iso": meeting.starts_at.isoformat(),
                "chair_unit": chairs.get(meeting.chair_unit_id, ""),
                "status": meeting.status.value,
                "status_text": language.gettext(STATUS_TEXT[meeting.status]),
                "role_text": language.gettext(ROLE_TEXT[invitation.role.value]),
                "revoked": revoked,
                # What the invitations API gives this unit: the same signed link.
                "join_url": links.url(meeting, invitation, unit.code) if joinable else None,
                "countdown": countdown_text(language, meeting.starts_at, now) if joinable else "",
                "notice": _notice_text(language, notices.get(meeting.id or 0), meeting.status),
            }
            (today_rows if meeting.starts_at < tomorrow else later_rows).append(row)
        if not unit_name:
            own = await session.get(Unit, actor.unit_id)
            unit_name = own.name if own is not None else ""
    return render(
        request,
        language,
        "today.html",
        actor=actor,
        no_unit=False,
        unit_name=unit_name,
        today_label=language.format_date(today),
        today_rows=today_rows,
        later_rows=later_rows,
    )


async def devicecheck_page(request: web.Request) -> web.StreamResponse:
    """``/devicecheck``: the device check on its own, for any signed-in account, any
    day (a join link opens only shortly before its meeting); it keeps the choice
    in the browser for the join page."""
    actor = await page_actor(request, *Role)
    return render(request, page_language(request), "devicecheck.html", actor=actor)


def add_today_pages(app: web.Application) -> None:
    app.router.add_get("/today", today_page)
    app.router.add_get("/devicecheck", devicecheck_page)
