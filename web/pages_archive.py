"""The clerks' pages: the archive of past meetings (search), a meeting's record
(attendance per unit, its downloads, its recordings) and its printable
attendance record.

Who: clerks and admins see every meeting; a chair account sees the meetings its
unit chaired (what the attendance and recordings APIs let it read). The
secretariat gets the 403 page: it schedules meetings on ``/meetings`` and the
recordings API does not admit it. Operators get the 403 page too.

Pages only read (GET); the CSV and XLSX files are the attendance API's routes.
Times are shown in Asia/Ho_Chi_Minh; days typed in the search are local days.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from babel.numbers import format_decimal
from sqlmodel import col, func, select

from conference import meetings as meeting_service
from conference import recordings as recording_service
from conference import units as unit_service
from conference.actors import Actor
from conference.attendance_report import (
    AttendanceReport,
    RollCallAnswer,
    UnitAttendance,
    attendance_report,
)
from conference.errors import NotFound, PermissionDenied
from conference.models import (
    CompositeStatus,
    InvitationRole,
    MeetingPublic,
    MeetingStatus,
    Recording,
    RecordingPublic,
    Role,
    Unit,
)
from conference.timezone import to_local, utcnow

from .appkeys import DATABASE
from .i18n import N_, Language
from .pages import COMPOSITE_TEXT, RECORDING_STATUS_TEXT
from .pages_frame import duration_text, home_for, page_actor, page_language, render
from .pages_meetings import (
    ROLE_TEXT,
    STATUS_TEXT,
    local_day_bounds,
    local_today,
    meeting_row,
    parse_day,
)
from .params import row_id

__all__ = ["ARCHIVE_READERS", "add_archive_pages"]

ARCHIVE_READERS = (Role.CLERK, Role.ADMIN, Role.CHAIR)
LIST_LIMIT = 1000  # the meetings API's largest page
DEFAULT_DAYS = 30


_ANSWER_TEXT = {
    "present": N_("Present"),
    "absent": N_("Absent"),
    "no-answer": N_("No answer"),
}


def _hhmm(value: datetime | None) -> str:
    return to_local(value).strftime("%H:%M") if value is not None else ""


def _chair_code(actor: Actor, ids: dict[int, str]) -> str | None:
    """The unit code whose chaired meetings ``actor`` sees, None when it sees all."""
    if actor.has(Role.CLERK, Role.ADMIN):
        return None
    return ids.get(actor.unit_id or -1, "")


async def _forbidden(request: web.Request, actor: Actor) -> web.Response:
    return render(
        request,
        page_language(request),
        "forbidden.html",
        status=403,
        actor=actor,
        home=home_for(actor.roles),
    )


async def _not_found(request: web.Request, actor: Actor) -> web.Response:
    return render(request, page_language(request), "archive_not_found.html", 404, actor=actor)


async def archive_page(request: web.Request) -> web.StreamResponse:
    """``/archive``: meetings of ``from``..``to`` (local days, default the last 30),
    of ``unit`` (invited or chairing), with ``q`` in the title, of ``status``."""
    actor = await page_actor(request, *ARCHIVE_READERS)
    language = page_language(request)
    today = local_today()
    first = parse_day(request.query.get("from"))
    last = parse_day(request.query.get("to"))
    if first is None and last is None:
        first, last = today - timedelta(days=DEFAULT_DAYS), today
    q = request.query.get("q", "").strip()[:300]
    status_text = request.query.get("status", "")
    status = MeetingStatus(status_text) if status_text in set(MeetingStatus) else None
    unit_code = request.query.get("unit", "")[:32]
    async with request.app[DATABASE].read() as session:
        unit_rows = (await session.exec(select(Unit.id, Unit.code, Unit.name))).all()
        names = {code: name for _, code, name in unit_rows}
        ids = {uid: code for uid, code, _ in unit_rows if uid is not None}
        chair = _chair_code(actor, ids)
        choices = _unit_choices(await unit_service.unit_tree(session), chair)
        if unit_code not in {c["code"] for c in choices}:
            unit_code = ""
        page = await meeting_service.list_meetings(
            session,
            actor,
            starts_from=local_day_bounds(first) if first else None,
            starts_to=local_day_bounds(last + timedelta(days=1)) if last else None,
            unit_code=unit_code or None,
            statuses=[status] if status else (),
            title=q or None,
            limit=LIST_LIMIT,
        )
        items = page.items
        if chair is not None:
            items = [m for m in items if m.chair_unit == chair]
        items = sorted(items, key=lambda m: (m.starts_at, m.id), reverse=True)
        counts = await _recording_counts(session, [m.id for m in items])
    rows = [_row(language, m, names, counts.get(m.id, 0)) for m in items]
    return render(
        request,
        language,
        "archive.html",
        actor=actor,
        q=q,
        date_from=first.isoformat() if first else "",
        date_to=last.isoformat() if last else "",
        unit=unit_code,
        units=choices,
        status_filter=status.value if status else "",
        statuses=[(s.value, language.gettext(t)) for s, t in STATUS_TEXT.items()],
        rows=rows,
        truncated=page.total > len(page.items),
    )


def _unit_choices(tree: list[dict[str, Any]], only: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(nodes: list[dict[str, Any]], depth: int) -> None:
        for node in nodes:
            if only is None or node["code"] == only:
                out.append(
                    {"code": node["code"], "name": node["name"], "indent": "\u00a0\u00a0" * depth}
                )
            walk(node["children"], depth + 1)

    walk(tree, 0)
    return out


async def _recording_counts(session: Any, meeting_ids: list[int]) -> dict[int, int]:
    if not meeting_ids:
        return {}
    query = (
        select(Recording.meeting_id, func.count())
        .where(col(Recording.meeting_id).in_(meeting_ids))
        .group_by(col(Recording.meeting_id))
    )
    return {mid: int(n) for mid, n in (await session.exec(query)).all()}


def _row(
    language: Language, m: MeetingPublic, names: dict[str, str], recordings: int
) -> dict[str, Any]:
    # The secretariat's row, with the chair unit's name and the number of recordings.
    return meeting_row(language, m) | {
        "chair_unit": names.get(m.chair_unit, m.chair_unit),
        "recordings": recordings,
    }


def _yes(language: Language, value: bool) -> str:
    return language.gettext(N_("Yes")) if value else language.gettext(N_("No"))


def _minutes(language: Language, seconds: float) -> str:
    return format_decimal(seconds / 60, "#,##0.0", locale=language.code)


def _roll_call_text(language: Language, u: UnitAttendance) -> list[str]:
    out = []
    for answer in u.roll_call:
        state = language.gettext(N_("present") if answer.present else N_("absent"))
        text = f"{answer.title}: {state}" if answer.title else state
        if answer.headcount is not None:
            text += f" ({answer.headcount})"
        out.append(text)
    return out


def _headcount(answer: RollCallAnswer | None) -> int | str:
    return "" if answer is None or answer.headcount is None else answer.headcount


def _roll_call_sections(language: Language, report: AttendanceReport) -> list[dict[str, Any]]:
    """Each roll call unit by unit: its answer, headcount and delegates, and the units
    expected to answer that did not.

    Expected: the units invited to take part (not the chair, not observers, not
    revoked), as in the room, where the chair's panel expects the participating
    sites; a unit that answered anyway is listed too. Units in the report's order.
    """
    sections: list[dict[str, Any]] = []
    for call in report.roll_calls:
        answers = dict(call.answers)
        rows: list[dict[str, Any]] = []
        for u in report.units:
            answer = answers.get(u.unit_id)
            expected = u.invited and u.role is InvitationRole.PARTICIPANT
            if answer is None and not expected:
                continue
            status = "no-answer" if answer is None else "present" if answer.present else "absent"
            rows.append(
                {
                    "number": len(rows) + 1,
                    "code": u.code,
                    "name": u.name,
                    "status": status,
                    "answer_text": language.gettext(_ANSWER_TEXT[status]),
                    "headcount": _headcount(answer),
                    "delegates": list(answer.delegates) if answer is not None else [],
                }
            )
        count = {s: sum(r["status"] == s for r in rows) for s in _ANSWER_TEXT}
        sections.append(
            {
                "number": call.number,
                "title": call.title,
                "at": _hhmm(call.first_answer_at),
                "rows": rows,
                "expected": len(rows),
                "answered": count["present"] + count["absent"],
                "present": count["present"],
                "absent": count["absent"],
                "no_answer": count["no-answer"],
                "people": sum(a.headcount or 0 for _, a in call.answers if a.present),
            }
        )
    return sections


def _unit_rows(language: Language, report: AttendanceReport) -> list[dict[str, Any]]:
    return [
        {
            "number": n,
            "code": u.code,
            "name": u.name,
            "role_text": language.gettext(ROLE_TEXT[u.role]) if u.role else "",
            "invited": u.invited,
            "invited_text": _yes(language, u.invited),
            "present": u.present,
            "present_text": _yes(language, u.present),
            "first_join": _hhmm(u.first_join),
            "last_leave": _hhmm(u.last_leave),
            "still_connected": u.still_connected,
            "minutes": _minutes(language, u.seconds_connected),
            "reconnects": u.reconnects,
            "late": u.late,
            "late_text": _yes(language, u.late),
            "absent": u.absent,
            "absent_text": _yes(language, u.absent),
            "roll_call": _roll_call_text(language, u),
        }
        for n, u in enumerate(report.units, start=1)
    ]


def _recording_rows(language: Language, items: list[RecordingPublic]) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "number": r.number,
            "status": r.status.value,
            "status_text": language.gettext(RECORDING_STATUS_TEXT[r.status]),
            "started": language.format_datetime(r.started_at),
            "duration": duration_text(r.duration_seconds) if r.duration_seconds else "",
            "composite_text": language.gettext(COMPOSITE_TEXT[r.composite_status]),
            "composite_done": r.composite_status is CompositeStatus.DONE,
            "progress": r.composite_progress,
            "percent": round(r.composite_progress * 100),
        }
        for r in sorted(items, key=lambda r: r.number)
    ]


async def _record(request: web.Request, template: str) -> web.StreamResponse:
    actor = await page_actor(request, *ARCHIVE_READERS)
    language = page_language(request)
    meeting_id = row_id(request.match_info["meeting_id"])
    if meeting_id is None:
        return await _not_found(request, actor)
    async with request.app[DATABASE].read() as session:
        try:
            report = await attendance_report(session, meeting_id, now=utcnow(), actor=actor)
            row = await meeting_service.get_meeting(session, meeting_id, actor=actor)
        except NotFound:
            return await _not_found(request, actor)
        except PermissionDenied:
            return await _forbidden(request, actor)
        if not actor.has(Role.CLERK, Role.ADMIN) and actor.unit_id != row.chair_unit_id:
            return await _forbidden(request, actor)
        chair = await session.get(Unit, row.chair_unit_id)
        recordings = await recording_service.list_recordings(
            session, actor, meeting_id=meeting_id, limit=500
        )
    summary = report.summary
    base = f"/api/meetings/{meeting_id}/attendance"
    return render(
        request,
        language,
        template,
        # The print view is a document: no navigation bar.
        actor=None if template == "archive_print.html" else actor,
        meeting=row,
        status_text=language.gettext(STATUS_TEXT[row.status]),
        day=language.format_date(row.starts_at),
        starts=_hhmm(row.starts_at),
        ends=_hhmm(row.ends_at),
        chair_name=chair.name if chair else "",
        summary=summary,
        actual_start=_hhmm(summary.actual_start),
        actual_end=_hhmm(summary.actual_end),
        grace=round(summary.late_grace.total_seconds() / 60),
        units=_unit_rows(language, report),
        roll_calls=_roll_call_sections(language, report),
        recordings=_recording_rows(language, recordings.items),
        csv_url=base + ".csv",
        xlsx_url=base + ".xlsx",
        print_url=f"/archive/meetings/{meeting_id}/print",
        record_url=f"/archive/meetings/{meeting_id}",
        generated=language.format_datetime(report.generated_at),
    )


async def meeting_record_page(request: web.Request) -> web.StreamResponse:
    """``/archive/meetings/{id}``: the meeting, its attendance per unit, its recordings."""
    return await _record(request, "archive_meeting.html")


async def print_page(request: web.Request) -> web.StreamResponse:
    """``/archive/meetings/{id}/print``: the attendance record to print and sign."""
    return await _record(request, "archive_print.html")


def add_archive_pages(app: web.Application) -> None:
    app.router.add_get("/archive", archive_page)
    app.router.add_get(r"/archive/meetings/{meeting_id:\d+}", meeting_record_page)
    app.router.add_get(r"/archive/meetings/{meeting_id:\d+}/print", print_page)
