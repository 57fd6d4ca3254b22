"""The attendance report over the real API, from attendance made by real signaling
clients (join, drop and resume, roll call) on SQLite and PostgreSQL.

Who may read it: clerks, admins, the secretariat and the chair unit's chair
accounts. An operator is refused by role (403). A chair account of another unit
is answered as ``GET /api/meetings/{id}`` answers it: 404 when its unit is not
invited (the meeting stays hidden), 403 when its unit is invited but does not chair.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import openpyxl
from sqlmodel import col, func, select

from conference.models import Account, AttendanceEvent, AttendanceKind, AuditEntry, Unit
from signaling.client import Client
from tests.conftest import Api
from tests.signaling.conftest import CHAIR, SNV, STTTT, TANTRACH, Meeting, schedule
from web.appkeys import TOKENS

QUICK = 5.0
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NAMES = {
    CHAIR: "Ủy ban nhân dân tỉnh Quảng Bình",
    TANTRACH: "Xã Tân Trạch",
    SNV: "Sở Nội vụ",
    STTTT: "Sở Thông tin và Truyền thông",
}
ORDER = [CHAIR, TANTRACH, SNV, STTTT]  # the unit tree's order
HEADERS = [
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
]
ROLL_CALL_HEADERS = [
    "Lần",
    "Tiêu đề",
    "Mã đơn vị",
    "Đơn vị",
    "Có mặt",
    "Số người",
    "Đại biểu",
    "Thời điểm trả lời",
]
TITLE = "Điểm danh đầu giờ"
SNV_DELEGATES = ["Nguyễn Văn Ánh", "Trần Thị Bích"]
STTTT_DELEGATES = ["Đặng Hữu Phước", "Lê Thị Ửng", "Phạm Quốc Việt"]


# --- helpers --------------------------------------------------------------------------


async def fetch(api: Api, path: str, as_user: str = "vanthu") -> Any:
    return await api.client.get(path, headers=api.auth(as_user))


async def count_rows(api: Api, table: Any) -> int:
    async with api.database.read() as session:
        return int((await session.exec(select(func.count()).select_from(table))).one())


async def events_of(api: Api, meeting_id: int) -> list[AttendanceEvent]:
    async with api.database.read() as session:
        rows = await session.exec(
            select(AttendanceEvent)
            .where(AttendanceEvent.meeting_id == meeting_id)
            .order_by(col(AttendanceEvent.id))
        )
        return list(rows.all())


async def unit_ids(api: Api) -> dict[str, int]:
    async with api.database.read() as session:
        rows = (await session.exec(select(Unit.code, Unit.id))).all()
    return {code: uid for code, uid in rows if uid is not None}


async def wait_disconnected(client: Client, pid: str | None) -> None:
    async with asyncio.timeout(QUICK):
        while True:
            updated = await client.wait_for("participant_updated")
            entry = updated["participant"]
            if entry["id"] == pid and entry.get("connected") is False:
                return


def local_naive(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(HCM).replace(tzinfo=None)


def csv_rows(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(body[3:].decode("utf-8"), newline="")))


@contextlib.asynccontextmanager
async def live_attendance(api: Api) -> AsyncIterator[tuple[Meeting, dict[str, str]]]:
    """Chair, SNV and STTTT join; SNV drops and resumes; TANTRACH never comes; SNV
    and STTTT answer a roll call. The meeting started 6 minutes ago, so everyone
    present is late by the default 5-minute grace. Yields while they are all
    still connected, with their participant ids."""
    meeting = await schedule(api, starts_in=-timedelta(minutes=6))
    pids: dict[str, str] = {}
    async with meeting.client(CHAIR) as chair, meeting.client(STTTT) as stttt:
        async with meeting.client(SNV) as snv:
            assert snv.participant
            assert snv.resume_token
            pids[SNV], resume_token = snv.participant, snv.resume_token
            transport = snv.ws.transport
            assert transport is not None
            transport.abort()  # the connection drops without a leave
            await wait_disconnected(chair, snv.participant)
        async with Client.connect(meeting.ws_url) as again:
            assert (await again.resume(resume_token))["resumed"] is True
            await chair.request("roll_call_start", within=QUICK, title=TITLE)
            await again.request(
                "roll_call_answer", within=QUICK, present=True, headcount=3, delegates=SNV_DELEGATES
            )
            await stttt.request(
                "roll_call_answer",
                within=QUICK,
                present=True,
                headcount=2,
                delegates=STTTT_DELEGATES,
            )
            await chair.request("roll_call_close", within=QUICK)
            assert chair.participant
            assert stttt.participant
            pids[CHAIR], pids[STTTT] = chair.participant, stttt.participant
            await asyncio.sleep(0.3)  # some connected time worth measuring
            yield meeting, pids


# --- the report of a live meeting ---------------------------------------------------------------


async def check_json(api: Api, meeting: Meeting, pids: dict[str, str]) -> None:
    response = await fetch(api, f"/api/meetings/{meeting.id}/attendance")
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    report = await response.json()
    assert report["meeting_id"] == meeting.id
    assert report["title"] == "Họp trực tuyến thử nghiệm"
    assert report["status"] == "live"
    assert report["timezone"] == "Asia/Ho_Chi_Minh"
    units = {u["unit"]: u for u in report["units"]}
    assert [u["unit"] for u in report["units"]] == ORDER
    for code, name in NAMES.items():
        assert units[code]["unit_name"] == name
    assert units[CHAIR]["role"] == "chair"
    assert {units[c]["role"] for c in (SNV, STTTT, TANTRACH)} == {"participant"}

    events = await events_of(api, meeting.id)
    ids = await unit_ids(api)
    for code in (CHAIR, SNV, STTTT):
        u = units[code]
        assert (u["present"], u["absent"], u["invited"], u["revoked"]) == (True, False, True, False)
        assert u["minutes_connected"] > 0
        assert u["endpoints"] == 1
        assert u["still_connected"] is True
        assert u["late"] is True  # joined 6 minutes after the start
        first = min(
            e.at for e in events if e.unit_id == ids[code] and e.kind == AttendanceKind.JOIN
        )
        assert u["first_join"].endswith("+07:00")
        assert datetime.fromisoformat(u["first_join"]) == first
    assert [units[c]["reconnects"] for c in (CHAIR, SNV, STTTT)] == [0, 1, 0]
    kinds = [e.kind for e in events if e.participant_session == pids[SNV]]
    assert kinds[:3] == [AttendanceKind.JOIN, AttendanceKind.DISCONNECT, AttendanceKind.RECONNECT]

    absent = units[TANTRACH]
    assert (absent["present"], absent["absent"], absent["late"]) == (False, True, False)
    assert (absent["first_join"], absent["last_leave"]) == (None, None)
    assert (absent["minutes_connected"], absent["endpoints"]) == (0, 0)

    summary = report["summary"]
    assert (summary["invited"], summary["present"], summary["absent"], summary["late"]) == (
        4,
        3,
        1,
        3,
    )
    assert summary["actual_end"] is None  # still running
    assert datetime.fromisoformat(summary["actual_start"]) == min(
        e.at for e in events if e.kind == AttendanceKind.JOIN
    )
    assert summary["scheduled_start"].endswith("+07:00")

    (roll_call,) = report["roll_calls"]
    assert roll_call["title"] == TITLE
    assert [
        (a["unit"], a["unit_name"], a["present"], a["headcount"], a["delegates"])
        for a in roll_call["answers"]
    ] == [
        (SNV, NAMES[SNV], True, 3, SNV_DELEGATES),
        (STTTT, NAMES[STTTT], True, 2, STTTT_DELEGATES),
    ]
    assert [a["delegates"] for a in units[SNV]["roll_call"]] == [SNV_DELEGATES]
    assert units[CHAIR]["roll_call"] == []

    # The grace is a parameter: 10 minutes makes the same arrivals on time.
    response = await fetch(api, f"/api/meetings/{meeting.id}/attendance?grace=10")
    relaxed = await response.json()
    assert relaxed["summary"]["late"] == 0
    assert relaxed["summary"]["late_grace_minutes"] == 10
    response = await fetch(api, f"/api/meetings/{meeting.id}/attendance?grace=-1")
    assert response.status == 422


async def check_csv(api: Api, meeting: Meeting, pids: dict[str, str]) -> None:
    response = await fetch(api, f"/api/meetings/{meeting.id}/attendance.csv", as_user="chutri")
    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    assert response.charset == "utf-8"
    disposition = response.headers["Content-Disposition"]
    disposition.encode("ascii")  # a header is ASCII; the Vietnamese name is %-encoded
    assert f'filename="diem-danh-{meeting.id}-hop-truc-tuyen-thu-nghiem.csv"' in disposition
    (encoded,) = re.findall(r"filename\*=UTF-8''(\S+)", disposition)
    assert unquote(encoded) == "Điểm danh - Họp trực tuyến thử nghiệm.csv"

    body = await response.read()
    assert "Số phút kết nối".encode() in body  # UTF-8 bytes, not a legacy code page
    header, *rows = csv_rows(body)
    assert header == HEADERS
    assert [r[1] for r in rows] == ORDER
    by_code = {r[1]: dict(zip(header, r, strict=True)) for r in rows}
    for code, name in NAMES.items():
        assert by_code[code]["Đơn vị"] == name
    json_units = {
        u["unit"]: u
        for u in (await (await fetch(api, f"/api/meetings/{meeting.id}/attendance")).json())[
            "units"
        ]
    }
    for code in (CHAIR, SNV, STTTT):
        r = by_code[code]
        assert (r["Có mặt"], r["Vắng mặt"], r["Đến muộn"]) == ("Có", "Không", "Có")
        first = local_naive(json_units[code]["first_join"])
        assert r["Vào lần đầu"] == first.strftime("%d/%m/%Y %H:%M")
        assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", r["Rời lần cuối"])
        assert float(r["Số phút kết nối"]) >= 0
    assert by_code[CHAIR]["Vai trò"] == "Chủ trì"
    assert by_code[SNV]["Vai trò"] == "Tham dự"
    assert by_code[SNV]["Số lần kết nối lại"] == "1"
    assert by_code[STTTT]["Số lần kết nối lại"] == "0"
    assert by_code[SNV]["Điểm danh"] == (
        "Điểm danh đầu giờ: có mặt, 3 người (Nguyễn Văn Ánh; Trần Thị Bích)"
    )
    assert by_code[STTTT]["Điểm danh"] == (
        "Điểm danh đầu giờ: có mặt, 2 người (Đặng Hữu Phước; Lê Thị Ửng; Phạm Quốc Việt)"
    )
    absent = by_code[TANTRACH]
    assert (absent["Có mặt"], absent["Vắng mặt"], absent["Đến muộn"]) == ("Không", "Có", "Không")
    assert (absent["Vào lần đầu"], absent["Rời lần cuối"], absent["Điểm danh"]) == ("", "", "")
    assert absent["Số phút kết nối"] == "0.00"


async def check_xlsx(api: Api, meeting: Meeting, pids: dict[str, str]) -> None:
    response = await fetch(api, f"/api/meetings/{meeting.id}/attendance.xlsx", as_user="thuky")
    assert response.status == 200, await response.text()
    assert response.content_type == XLSX_TYPE
    disposition = response.headers["Content-Disposition"]
    assert f'filename="diem-danh-{meeting.id}-hop-truc-tuyen-thu-nghiem.xlsx"' in disposition
    assert "filename*=UTF-8''" in disposition
    book = openpyxl.load_workbook(io.BytesIO(await response.read()))
    assert book.sheetnames == ["Điểm danh", "Điểm danh nhanh"]

    sheet = book["Điểm danh"]
    assert sheet["A1"].value == "Họp trực tuyến thử nghiệm"
    report = await (await fetch(api, f"/api/meetings/{meeting.id}/attendance")).json()
    start = local_naive(report["summary"]["scheduled_start"])
    end = local_naive(report["summary"]["scheduled_end"])
    time_range = sheet["A2"].value
    assert start.strftime("%d/%m/%Y") in time_range
    assert start.strftime("%H:%M") in time_range
    assert end.strftime("%H:%M") in time_range
    header = [c.value for c in sheet[5]]
    assert header == HEADERS
    assert all(c.font.b for c in sheet[5])
    assert sheet.freeze_panes == "A6"
    assert sheet.column_dimensions["C"].width >= 30  # the unit's name is readable
    rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=6)]
    assert [r[1] for r in rows] == ORDER
    by_code = {r[1]: dict(zip(header, r, strict=True)) for r in rows}
    json_units = {u["unit"]: u for u in report["units"]}
    for code, name in NAMES.items():
        assert by_code[code]["Đơn vị"] == name
    for code in (CHAIR, SNV, STTTT):
        r = by_code[code]
        minutes = r["Số phút kết nối"]
        assert isinstance(minutes, float | int)
        assert minutes > 0
        first = r["Vào lần đầu"]
        assert isinstance(first, datetime)
        # Local wall-clock time (Excel has no zones), to the second.
        expected = local_naive(json_units[code]["first_join"])
        assert abs((first - expected).total_seconds()) < 1
        assert isinstance(r["Rời lần cuối"], datetime)
        assert r["Số lần kết nối lại"] == (1 if code == SNV else 0)
        assert r["Có mặt"] == "Có"
    first_cell = sheet.cell(row=6 + ORDER.index(SNV), column=HEADERS.index("Vào lần đầu") + 1)
    assert first_cell.number_format == "dd/mm/yyyy hh:mm"
    absent = by_code[TANTRACH]
    assert (absent["Có mặt"], absent["Vắng mặt"], absent["Số phút kết nối"]) == ("Không", "Có", 0)
    assert absent["Vào lần đầu"] is None

    calls = book["Điểm danh nhanh"]
    call_rows = [[c.value for c in r] for r in calls.iter_rows()]
    assert call_rows[0] == ROLL_CALL_HEADERS
    assert calls.freeze_panes == "A2"
    answers = [r[:7] for r in call_rows[1:]]
    assert answers == [
        [1, TITLE, SNV, NAMES[SNV], "Có", 3, "; ".join(SNV_DELEGATES)],
        [1, TITLE, STTTT, NAMES[STTTT], "Có", 2, "; ".join(STTTT_DELEGATES)],
    ]
    assert all(isinstance(r[7], datetime) for r in call_rows[1:])


async def test_the_report_of_a_live_meeting_as_json_csv_and_xlsx_then_ended(api: Api) -> None:
    async with live_attendance(api) as (meeting, pids):
        for check in (check_json, check_csv, check_xlsx):
            await check(api, meeting, pids)

    # The participants left (their clients closed): their intervals are closed now.
    async with meeting.client(CHAIR) as chair:
        await chair.request("end", within=QUICK, reason="Kết thúc")
        await chair.wait_for("ended", within=QUICK)
    # The room commits the status with the closing events before it says "ended".
    report = await (await fetch(api, f"/api/meetings/{meeting.id}/attendance")).json()
    assert report["status"] == "ended"
    units = {u["unit"]: u for u in report["units"]}
    assert not any(u["still_connected"] for u in report["units"])
    assert units[CHAIR]["endpoints"] == 2  # the second screen that ended the meeting
    last = max(e.at for e in await events_of(api, meeting.id))
    assert datetime.fromisoformat(report["summary"]["actual_end"]) == last
    assert report["summary"]["present"] == 3


# --- formulas stay text --------------------------------------------------------------------------


async def test_text_that_looks_like_a_formula_stays_text(api: Api) -> None:
    meeting = await schedule(api, invited_units=[SNV])
    sneaky = '=HYPERLINK("http://example.invalid","Bấm vào")'
    async with meeting.client(CHAIR) as chair, meeting.client(SNV) as snv:
        await chair.request("roll_call_start", within=QUICK, title="@Điểm danh")
        await snv.request("roll_call_answer", within=QUICK, present=True, delegates=[sneaky])
        response = await fetch(api, f"/api/meetings/{meeting.id}/attendance.csv")
        rows = csv_rows(await response.read())
        (snv_row,) = [r for r in rows if r[1] == SNV]
        assert snv_row[-1] == f"'@Điểm danh: có mặt ({sneaky})"  # quoted: not run by Excel
        response = await fetch(api, f"/api/meetings/{meeting.id}/attendance.xlsx")
        book = openpyxl.load_workbook(io.BytesIO(await response.read()))
        cell = book["Điểm danh nhanh"]["G2"]
        assert (cell.value, cell.data_type) == (sneaky, "s")
        assert book["Điểm danh nhanh"]["B2"].value == "@Điểm danh"
        json_report = await (await fetch(api, f"/api/meetings/{meeting.id}/attendance")).json()
        assert json_report["roll_calls"][0]["answers"][0]["delegates"] == [sneaky]


# --- who may read it ---------------------------------------------------------------------------


async def chair_of(api: Api, unit: str) -> dict[str, str]:
    """A chair account of ``unit``, straight in the database (no audit entry)."""
    ids = await unit_ids(api)
    async with api.database.write() as session:
        account = Account(
            username=f"chutri-{unit.lower()}",
            display_name=f"Chủ trì {unit}",
            password_hash="not-used",
            roles=["chair"],
            unit_id=ids[unit],
        )
        session.add(account)
        await session.flush()
        assert account.id is not None
        account_id, username = account.id, account.username
    token = api.client.app[TOKENS].issue_access(
        account_id=account_id, username=username, roles=["chair"], ttl_seconds=600
    )
    return {"Authorization": f"Bearer {token}"}


async def test_who_may_read_and_refusals_change_nothing(api: Api) -> None:
    meeting = await schedule(api)  # chaired by QB; SNV, STTTT, TANTRACH invited
    async with meeting.client(SNV) as snv:
        await snv.request("leave", within=QUICK)
    stranger = await chair_of(api, "QB-STP")  # not invited
    guest = await chair_of(api, STTTT)  # invited, does not chair
    suffixes = ("attendance", "attendance.csv", "attendance.xlsx")
    audits, events = await count_rows(api, AuditEntry), await count_rows(api, AttendanceEvent)

    for user in ("vanthu", "admin", "thuky", "chutri"):
        for suffix in suffixes:
            response = await fetch(api, f"/api/meetings/{meeting.id}/{suffix}", as_user=user)
            assert response.status == 200, (user, suffix, await response.text())

    async def refused(path: str, headers: dict[str, str], status: int, code: str) -> None:
        response = await api.client.get(path, headers=headers)
        assert response.status == status, (path, await response.text())
        assert (await response.json())["error"]["code"] == code

    for suffix in suffixes:
        path = f"/api/meetings/{meeting.id}/{suffix}"
        await refused(path, api.auth("vanhanh"), 403, "forbidden")  # an operator
        await refused(path, guest, 403, "forbidden")
        await refused(path, stranger, 404, "unknown_meeting")
        await refused(path, {}, 401, "unauthenticated")
        for missing in ("999999", "0", "abc", "12x", "99999999999", "²"):
            await refused(
                f"/api/meetings/{missing}/{suffix}", api.auth("vanthu"), 404, "unknown_meeting"
            )
    assert await count_rows(api, AuditEntry) == audits
    assert await count_rows(api, AttendanceEvent) == events


async def test_the_routes_are_in_the_openapi_document(api: Api) -> None:
    document = await api.call("GET", "/api/openapi.json", as_user=None, expect=200)
    for suffix in ("attendance", "attendance.csv", "attendance.xlsx"):
        op = document["paths"][f"/api/meetings/{{meeting_id}}/{suffix}"]["get"]
        assert {"401", "403", "404"} <= set(op["responses"])
        assert "chair" in op["description"]
        assert "clerk" in op["description"]
        assert "operator" not in op["description"]
