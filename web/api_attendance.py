"""The attendance report of a meeting, per invited unit: JSON, CSV and XLSX.

Readers are clerks, admins, the secretariat, and the chair accounts of the
meeting's chair unit. Operators are refused by role (403). A chair account of
another unit gets what ``GET /api/meetings/{id}`` would give it: 404 when its
unit is not invited (the meeting is not revealed), 403 when its unit is invited
but does not chair. Reading a report changes nothing and writes no audit entry.

The definitions (present, late, minutes, ...) are those of
``conference.attendance_report``. Files show local time (Asia/Ho_Chi_Minh):
the CSV as ``dd/mm/yyyy HH:MM`` text, UTF-8 with a byte order mark so Excel
reads Vietnamese; the XLSX as real Excel date-times.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from aiohttp import web
from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.styles import Alignment, Font, PatternFill  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from pydantic import BaseModel, PlainSerializer

from conference.attendance_report import (
    AttendanceReport,
    RollCallAnswer,
    UnitAttendance,
    attendance_report,
)
from conference.errors import NotFound
from conference.models import InvitationRole, MeetingStatus, Role
from conference.slugs import ascii_slug
from conference.timezone import LOCAL_ZONE_NAME, to_local, utcnow

from .api import Api, Call, QueryParam, json_ok, roles
from .appkeys import DATABASE
from .params import int_param, row_id

__all__ = ["CSV_HEADERS", "ROLL_CALL_HEADERS", "add_attendance_routes"]

_READERS = roles(Role.CLERK, Role.ADMIN, Role.SECRETARIAT, Role.CHAIR)
_ID = "{meeting_id}"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_GRACE = QueryParam(
    "grace",
    "minutes after the scheduled start a unit may still arrive on time, 0 to 240 (default 5)",
    {"type": "integer"},
)

CSV_HEADERS = (
    "STT",
    "Mã đơn vị",
    "Đơn vị",
    "Vai trò",
    "Được mời",
    "Có mặt",
    "Vào lần đầu",
    "Rời lần cuối",
    "Số phút kết nối",
    "Số lần kết nối lại",
    "Số điểm cầu",
    "Đến muộn",
    "Vắng mặt",
    "Điểm danh",
)
ROLL_CALL_HEADERS = (
    "Lần",
    "Tiêu đề",
    "Mã đơn vị",
    "Đơn vị",
    "Có mặt",
    "Số người",
    "Đại biểu",
    "Thời điểm trả lời",
)
_WIDTHS = (6, 22, 44, 12, 12, 9, 17, 17, 15, 17, 12, 10, 10, 60)
_ROLL_CALL_WIDTHS = (6, 30, 22, 44, 9, 10, 50, 19)
_ROLES = {
    InvitationRole.CHAIR: "Chủ trì",
    InvitationRole.PARTICIPANT: "Tham dự",
    InvitationRole.OBSERVER: "Dự thính",
}
_TIME = "%d/%m/%Y %H:%M"
_EXCEL_TIME = "dd/mm/yyyy hh:mm"
# Spreadsheets run a cell starting with these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


LocalTime = Annotated[datetime, PlainSerializer(lambda v: to_local(v).isoformat(), return_type=str)]


class RollCallAnswerOut(BaseModel):
    call: int
    title: str
    present: bool
    headcount: int | None
    delegates: list[str]
    at: LocalTime


class UnitAttendanceOut(BaseModel):
    unit: str
    unit_name: str
    role: InvitationRole | None
    invited: bool
    revoked: bool
    present: bool
    first_join: LocalTime | None
    last_leave: LocalTime | None
    still_connected: bool
    minutes_connected: float
    seconds_connected: float
    reconnects: int
    late: bool
    absent: bool
    endpoints: int
    roll_call: list[RollCallAnswerOut]


class RollCallUnitAnswerOut(BaseModel):
    unit: str
    unit_name: str
    present: bool
    headcount: int | None
    delegates: list[str]
    at: LocalTime


class RollCallOut(BaseModel):
    number: int
    title: str
    first_answer_at: LocalTime
    answers: list[RollCallUnitAnswerOut]


class AttendanceSummaryOut(BaseModel):
    invited: int
    present: int
    absent: int
    late: int
    late_grace_minutes: float
    scheduled_start: LocalTime
    scheduled_end: LocalTime
    actual_start: LocalTime | None
    actual_end: LocalTime | None


class AttendanceReportOut(BaseModel):
    meeting_id: int
    title: str
    status: MeetingStatus
    generated_at: LocalTime
    timezone: str = LOCAL_ZONE_NAME
    summary: AttendanceSummaryOut
    units: list[UnitAttendanceOut]
    roll_calls: list[RollCallOut]


def _meeting_id(request: web.Request) -> int:
    text = request.match_info["meeting_id"]
    value = row_id(text)
    if value is None:
        raise NotFound(f"no meeting {text[:20]!r}", code="unknown_meeting")
    return value


async def _load(request: web.Request, call: Call) -> AttendanceReport:
    grace = int_param(request, "grace", default=5, low=0, high=240)
    async with request.app[DATABASE].read() as session:
        return await attendance_report(
            session,
            _meeting_id(request),
            now=utcnow(),
            actor=call.who,
            grace=timedelta(minutes=grace),
        )


# --- JSON -------------------------------------------------------------------------


def _answer_out(a: RollCallAnswer) -> RollCallAnswerOut:
    return RollCallAnswerOut(
        call=a.call,
        title=a.title,
        present=a.present,
        headcount=a.headcount,
        delegates=list(a.delegates),
        at=a.at,
    )


def _unit_out(u: UnitAttendance) -> UnitAttendanceOut:
    return UnitAttendanceOut(
        unit=u.code,
        unit_name=u.name,
        role=u.role,
        invited=u.invited,
        revoked=u.revoked,
        present=u.present,
        first_join=u.first_join,
        last_leave=u.last_leave,
        still_connected=u.still_connected,
        minutes_connected=round(u.minutes_connected, 3),
        seconds_connected=round(u.seconds_connected, 1),
        reconnects=u.reconnects,
        late=u.late,
        absent=u.absent,
        endpoints=u.endpoints,
        roll_call=[_answer_out(a) for a in u.roll_call],
    )


def report_out(report: AttendanceReport) -> AttendanceReportOut:
    units = {u.unit_id: u for u in report.units}
    s = report.summary
    return AttendanceReportOut(
        meeting_id=report.meeting.id,
        title=report.meeting.title,
        status=report.meeting.status,
        generated_at=report.generated_at,
        summary=AttendanceSummaryOut(
            invited=s.invited,
            present=s.present,
            absent=s.absent,
            late=s.late,
            late_grace_minutes=s.late_grace.total_seconds() / 60,
            scheduled_start=s.scheduled_start,
            scheduled_end=s.scheduled_end,
            actual_start=s.actual_start,
            actual_end=s.actual_end,
        ),
        units=[_unit_out(u) for u in report.units],
        roll_calls=[
            RollCallOut(
                number=c.number,
                title=c.title,
                first_answer_at=c.first_answer_at,
                answers=[
                    RollCallUnitAnswerOut(
                        unit=units[uid].code,
                        unit_name=units[uid].name,
                        present=a.present,
                        headcount=a.headcount,
                        delegates=list(a.delegates),
                        at=a.at,
                    )
                    for uid, a in c.answers
                ],
            )
            for c in report.roll_calls
        ],
    )


# --- shared by the files --------------------------------------------------------------


def _text(value: str) -> str:
    """Text a spreadsheet shows as typed: never a formula, no XML-illegal characters."""
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def _yes(value: bool) -> str:
    return "Có" if value else "Không"


def _invited(u: UnitAttendance) -> str:
    if u.revoked:
        return "Đã thu hồi"
    return _yes(u.invited)


def _local_text(value: datetime | None) -> str:
    return "" if value is None else to_local(value).strftime(_TIME)


def _excel_time(value: datetime | None) -> datetime | None:
    # Excel has no time zones: a naive local time, as the clerk reads it.
    return None if value is None else to_local(value).replace(tzinfo=None)


def _answer_text(a: RollCallAnswer) -> str:
    text = f"{a.title}: {'có mặt' if a.present else 'vắng mặt'}"
    if a.headcount is not None:
        text += f", {a.headcount} người"
    if a.delegates:
        text += f" ({'; '.join(a.delegates)})"
    return text


def _roll_call_text(u: UnitAttendance) -> str:
    return " | ".join(_answer_text(a) for a in u.roll_call)


def _time_range(report: AttendanceReport) -> str:
    start = to_local(report.meeting.starts_at)
    end = to_local(report.meeting.ends_at)
    if start.date() == end.date():
        return f"Ngày {start:%d/%m/%Y}, từ {start:%H:%M} đến {end:%H:%M} (giờ Việt Nam)"
    return f"Từ {start:{_TIME}} đến {end:{_TIME}} (giờ Việt Nam)"


def _summary_line(report: AttendanceReport) -> str:
    s = report.summary
    parts = [
        f"Được mời: {s.invited}",
        f"Có mặt: {s.present}",
        f"Vắng mặt: {s.absent}",
        f"Đến muộn: {s.late}",
    ]
    if s.actual_start is not None:
        parts.append(f"Bắt đầu thực tế: {_local_text(s.actual_start)}")
    if s.actual_end is not None:
        parts.append(f"Kết thúc thực tế: {_local_text(s.actual_end)}")
    parts.append(f"Lập lúc: {_local_text(report.generated_at)}")
    return " · ".join(parts)


def _attachment(report: AttendanceReport, extension: str) -> str:
    """Content-Disposition with an ASCII name and the Vietnamese one (RFC 6266 §4.3,
    RFC 5987 ``filename*``) for browsers that read it."""
    meeting = report.meeting
    ascii_name = f"diem-danh-{meeting.id}-{ascii_slug(meeting.title)}.{extension}"
    title = "".join(c if c.isprintable() and c not in '/\\"' else "-" for c in meeting.title)
    utf8_name = quote(f"Điểm danh - {title}.{extension}", safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8_name}"


# --- CSV ------------------------------------------------------------------------------


def _unit_values(number: int, u: UnitAttendance, *, csv_text: bool) -> list[Any]:
    """One unit's cells: text and ``dd/mm/yyyy HH:MM`` for CSV, else typed values."""
    text = _text if csv_text else str
    return [
        number,
        text(u.code),
        text(u.name),
        _ROLES[u.role] if u.role is not None else "",
        _invited(u),
        _yes(u.present),
        _local_text(u.first_join) if csv_text else u.first_join,
        _local_text(u.last_leave) if csv_text else u.last_leave,
        # The workbook keeps the exact value (shown with 2 decimals) so sums add up.
        f"{u.minutes_connected:.2f}" if csv_text else u.minutes_connected,
        u.reconnects,
        u.endpoints,
        _yes(u.late),
        _yes(u.absent),
        text(_roll_call_text(u)),
    ]


def report_csv(report: AttendanceReport) -> bytes:
    """One row per unit under Vietnamese headers; UTF-8 with a BOM (Excel needs it
    to read the file as UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADERS)
    for number, u in enumerate(report.units, start=1):
        writer.writerow(_unit_values(number, u, csv_text=True))
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


# --- XLSX -----------------------------------------------------------------------------

_BOLD = Font(bold=True)
_HEADER_FILL = PatternFill("solid", start_color="DDEBF7")


def _header(sheet: Any, row: int, headers: Sequence[str], widths: Sequence[int]) -> None:
    for column, (name, width) in enumerate(zip(headers, widths, strict=True), start=1):
        cell = sheet.cell(row=row, column=column, value=name)
        cell.font = _BOLD
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        sheet.column_dimensions[get_column_letter(column)].width = width


def _put(sheet: Any, row: int, column: int, value: Any) -> None:
    cell = sheet.cell(row=row, column=column)
    if isinstance(value, datetime):
        cell.value = _excel_time(value)
        cell.number_format = _EXCEL_TIME
    elif isinstance(value, str):
        cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell.data_type = "s"  # openpyxl would store "=..." as a formula
    else:
        cell.value = value
        if isinstance(value, float):
            cell.number_format = "0.00"


def report_xlsx(report: AttendanceReport) -> bytes:
    """Sheet "Điểm danh": a title, the time range and the summary, then one row per
    unit under a bold, frozen header. Sheet "Điểm danh nhanh": the roll-call answers."""
    book = Workbook()
    sheet = book.active
    sheet.title = "Điểm danh"
    _put(sheet, 1, 1, report.meeting.title)
    sheet.cell(row=1, column=1).font = Font(bold=True, size=14)
    _put(sheet, 2, 1, _time_range(report))
    _put(sheet, 3, 1, _summary_line(report))
    first = 5
    _header(sheet, first, CSV_HEADERS, _WIDTHS)
    sheet.freeze_panes = sheet.cell(row=first + 1, column=1)
    for number, u in enumerate(report.units, start=1):
        # _put keeps text as text: no quote in front of a leading "=".
        values = _unit_values(number, u, csv_text=False)
        for column, value in enumerate(values, start=1):
            _put(sheet, first + number, column, value)
    sheet.auto_filter.ref = (
        f"A{first}:{get_column_letter(len(CSV_HEADERS))}{first + max(len(report.units), 1)}"
    )

    calls = book.create_sheet("Điểm danh nhanh")
    _header(calls, 1, ROLL_CALL_HEADERS, _ROLL_CALL_WIDTHS)
    calls.freeze_panes = "A2"
    units = {u.unit_id: u for u in report.units}
    row = 1
    for call in report.roll_calls:
        for uid, a in call.answers:
            row += 1
            cells: list[Any] = [
                call.number,
                call.title,
                units[uid].code,
                units[uid].name,
                _yes(a.present),
                a.headcount,
                "; ".join(a.delegates),
                a.at,
            ]
            for column, value in enumerate(cells, start=1):
                _put(calls, row, column, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- routes ---------------------------------------------------------------------------


def add_attendance_routes(api: Api) -> None:
    @api.route(
        "GET",
        f"/api/meetings/{_ID}/attendance",
        summary="Attendance report of a meeting, per invited unit",
        tag="attendance",
        roles=_READERS,
        response=AttendanceReportOut,
        query=[_GRACE],
        errors=(404, 422),
    )
    async def attendance(request: web.Request, call: Call) -> web.StreamResponse:
        return json_ok(report_out(await _load(request, call)))

    @api.route(
        "GET",
        f"/api/meetings/{_ID}/attendance.csv",
        summary="Attendance report as CSV (UTF-8 with BOM, Vietnamese headers, local times)",
        tag="attendance",
        roles=_READERS,
        query=[_GRACE],
        content_type="text/csv; charset=utf-8",
        errors=(404, 422),
    )
    async def attendance_csv(request: web.Request, call: Call) -> web.StreamResponse:
        report = await _load(request, call)
        return web.Response(
            body=report_csv(report),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": _attachment(report, "csv")},
        )

    @api.route(
        "GET",
        f"/api/meetings/{_ID}/attendance.xlsx",
        summary="Attendance report as an Excel workbook (units, roll-call answers)",
        tag="attendance",
        roles=_READERS,
        query=[_GRACE],
        content_type=_XLSX,
        errors=(404, 422),
    )
    async def attendance_xlsx(request: web.Request, call: Call) -> web.StreamResponse:
        report = await _load(request, call)
        # Building a workbook takes tens of milliseconds per hundred units: not on
        # the event loop that carries the rooms' signaling.
        body = await asyncio.to_thread(report_xlsx, report)
        return web.Response(
            body=body,
            content_type=_XLSX,
            headers={"Content-Disposition": _attachment(report, "xlsx")},
        )
