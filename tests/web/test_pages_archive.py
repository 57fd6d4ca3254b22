"""The clerks' pages: the archive search, a meeting's record (attendance per unit,
the CSV/XLSX downloads, the recordings) and its printable attendance record.

Who: clerks and admins; a chair account sees the meetings its unit chaired. The
secretariat and operators get the 403 page (the secretariat has /meetings, and
the recordings API does not admit it).

Meetings are rows in the past (the API refuses to schedule those), with real
invitations and the attendance events the room writes, read back through
``conference.attendance_report`` by the page.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from conference.models import (
    AttendanceEvent,
    AttendanceKind,
    CompositeStatus,
    Invitation,
    InvitationRole,
    Meeting,
    MeetingStatus,
    Recording,
    RecordingStatus,
)
from conference.slugs import fold
from conference.timezone import LOCAL_ZONE
from tests.conftest import cookie_for
from tests.recordings.recording_fixtures import add_meeting, add_recording, unit_id
from web.appkeys import CONFIG
from web.pages_frame import CONTENT_SECURITY_POLICY

NOVEMBER = "Họp giao ban tháng 11 — Sở Nội vụ"
OCTOBER = "Họp giao ban tháng 10 — Sở Nội vụ"
CANCELLED = "Hội nghị tổng kết công tác năm của Sở Tư pháp"
FUTURE = "Hội nghị sơ kết quý I"
ROLL_CALL = "Điểm danh đầu giờ"


@dataclass
class Archive:
    november: int
    october: int
    cancelled: int
    future: int
    recordings: list[int]
    today: date


async def get(api: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    response = await api.client.get(path, headers=headers or {}, allow_redirects=False)
    return response.status, await response.text(), response


def local(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=LOCAL_ZONE)


async def past_meeting(
    api: Any,
    title: str,
    day: date,
    *,
    chair: str,
    invited: list[str],
    status: MeetingStatus = MeetingStatus.ENDED,
    agenda: list[str] | None = None,
) -> int:
    mid = await add_meeting(api.database, title=title, chair=chair, starts_at=local(day, 8, 0))
    ids = {code: await unit_id(api.database, code) for code in [chair, *invited]}
    async with api.database.write() as session:
        meeting = await session.get(Meeting, mid)
        assert meeting is not None
        meeting.status = status
        meeting.agenda = agenda or []
        session.add(meeting)
        for code in [chair, *invited]:
            role = InvitationRole.CHAIR if code == chair else InvitationRole.PARTICIPANT
            session.add(
                Invitation(meeting_id=mid, unit_id=ids[code], role=role, token_id=uuid.uuid4().hex)
            )
    return mid


async def attend(api: Any, meeting_id: int, day: date) -> None:
    """QB (chair) 07:58-09:00; SNV 08:10-08:20, drops, back 08:22-08:40, answers the
    roll call; STTTT never comes."""
    qb, snv = await unit_id(api.database, "QB"), await unit_id(api.database, "QB-SNV")
    log = [
        ("p-qb", qb, AttendanceKind.JOIN, (7, 58), {}),
        ("p-snv", snv, AttendanceKind.JOIN, (8, 10), {}),
        ("p-snv", snv, AttendanceKind.DISCONNECT, (8, 20), {}),
        ("p-snv", snv, AttendanceKind.RECONNECT, (8, 22), {}),
        (
            "p-snv",
            snv,
            AttendanceKind.ROLL_CALL,
            (8, 25),
            {"title": ROLL_CALL, "present": True, "headcount": 3, "delegates": ["Nguyễn Văn Ánh"]},
        ),
        ("p-snv", snv, AttendanceKind.LEAVE, (8, 40), {}),
        ("p-qb", qb, AttendanceKind.LEAVE, (9, 0), {}),
    ]
    async with api.database.write() as session:
        for pid, uid, kind, (hh, mm), info in log:
            session.add(
                AttendanceEvent(
                    meeting_id=meeting_id,
                    unit_id=uid,
                    participant_session=pid,
                    kind=kind,
                    at=local(day, hh, mm),
                    client_info=info,
                )
            )
            await session.flush()  # ids in the order of the log


@pytest.fixture
async def archive(api: Any) -> Archive:
    today = datetime.now(LOCAL_ZONE).date()
    november_day = today - timedelta(days=3)
    november = await past_meeting(
        api,
        NOVEMBER,
        november_day,
        chair="QB",
        invited=["QB-SNV", "QB-STTTT"],
        agenda=["Báo cáo tình hình tháng 11", "Ý kiến các sở, ngành"],
    )
    await attend(api, november, november_day)
    data_dir = api.client.app[CONFIG].data_dir
    first = await add_recording(
        api.database, data_dir, november, title=NOVEMBER, started_at=local(november_day, 8, 1)
    )
    second = await add_recording(
        api.database,
        data_dir,
        november,
        title=NOVEMBER,
        number=2,
        started_at=local(november_day, 8, 30),
        status=RecordingStatus.FAILED,
        files=False,
    )
    async with api.database.write() as session:
        row = await session.get(Recording, first.id)
        assert row is not None
        row.composite_status = CompositeStatus.RUNNING
        row.composite_progress = 0.42
        session.add(row)
    cancelled = await past_meeting(
        api,
        CANCELLED,
        today - timedelta(days=10),
        chair="QB-STP",
        invited=["QB-SNV", "QB"],  # QB invited, not chairing
        status=MeetingStatus.CANCELLED,
    )
    october = await past_meeting(
        api, OCTOBER, today - timedelta(days=40), chair="QB", invited=["QB-SNV"]
    )
    future = await past_meeting(
        api,
        FUTURE,
        today + timedelta(days=2),
        chair="QB",
        invited=["QB-SNV"],
        status=MeetingStatus.SCHEDULED,
    )
    return Archive(november, october, cancelled, future, [first.id, second.id], today)


def listed(html: str) -> set[int]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return {int(m) for m in re.findall(r'<tr data-meeting="(\d+)">', body)}


def unit_row(html: str, code: str) -> dict[str, str]:
    m = re.search(rf'<tr data-unit="{re.escape(code)}"[^>]*>(.*?)</tr>', html, re.DOTALL)
    assert m, f"no row of {code}"
    return dict(re.findall(r'<td[^>]*data-field="([^"]+)">(.*?)</td>', m.group(1), re.DOTALL))


def nav_of(html: str) -> str:
    m = re.search(r'<nav class="site-nav"[^>]*>(.*?)</nav>', html, re.DOTALL)
    return m.group(1) if m else ""


# --- who may open the pages -----------------------------------------------------------------


def paths(a: Archive) -> list[str]:
    return ["/archive", f"/archive/meetings/{a.november}", f"/archive/meetings/{a.november}/print"]


@pytest.mark.parametrize("locale", ["vi", "en"])
@pytest.mark.parametrize("username", ["vanthu", "admin"])
async def test_clerks_and_admins_open_every_page(
    api: Any, archive: Archive, username: str, locale: str
) -> None:
    headers = await cookie_for(api, username)
    for path in paths(archive):
        status, html, response = await get(api, f"{path}?lang={locale}", headers)
        assert status == 200, (path, html[:300])
        assert f'<html lang="{locale}">' in html
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "<script>" not in html
        assert "style=" not in html
        assert NOVEMBER in html  # Vietnamese text unchanged in either language
        assert '<link rel="stylesheet" href="/static/archive.css">' in html


@pytest.mark.parametrize("username", ["vanhanh", "thuky"])
async def test_operators_and_the_secretariat_get_a_403_page(
    api: Any, archive: Archive, username: str
) -> None:
    headers = await cookie_for(api, username)
    for path in paths(archive):
        status, html, _ = await get(api, path, headers)
        assert status == 403, path
        assert "Không được phép" in html
        assert NOVEMBER not in html


async def test_not_signed_in_goes_to_login_and_comes_back(api: Any, archive: Archive) -> None:
    for path in [*paths(archive), "/archive?q=giao+ban&from=2026-01-01"]:
        status, _, response = await get(api, path)
        assert status == 302, path
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login"
        assert parse_qs(location.query)["next"] == [path]


async def test_the_archive_is_in_the_navigation_and_the_clerks_start_page(api: Any) -> None:
    for username in ("vanthu", "admin"):
        _, html, _ = await get(api, "/archive", await cookie_for(api, username))
        assert '<a href="/archive" aria-current="page">Lưu trữ</a>' in nav_of(html), username
    _, html, _ = await get(api, "/archive?lang=en", await cookie_for(api, "vanthu"))
    assert '<a href="/archive" aria-current="page">Archive</a>' in nav_of(html)
    _, html, _ = await get(api, "/login")
    assert '"clerk": "/archive"' in html  # login.js goes there after signing in


# --- the search ------------------------------------------------------------------------------


async def test_by_default_the_last_30_days_newest_first(api: Any, archive: Archive) -> None:
    _, html, _ = await get(api, "/archive", await cookie_for(api, "vanthu"))
    assert listed(html) == {archive.november, archive.cancelled}
    first = (archive.today - timedelta(days=30)).isoformat()
    assert f'name="from" type="date" value="{first}"' in html
    assert f'name="to" type="date" value="{archive.today.isoformat()}"' in html
    assert html.index(f'data-meeting="{archive.november}"') < html.index(
        f'data-meeting="{archive.cancelled}"'
    )
    row = re.search(rf'<tr data-meeting="{archive.november}">(.*?)</tr>', html, re.DOTALL)
    assert row
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.DOTALL)
    assert cells[1] == "08:00–09:00"  # local time
    assert cells[2] == f'<a href="/archive/meetings/{archive.november}">{NOVEMBER}</a>'
    assert cells[3] == "Ủy ban nhân dân tỉnh Quảng Bình"
    assert "Đã kết thúc" in cells[4]
    assert cells[5] == "2"  # recordings


async def test_the_date_range(api: Any, archive: Archive) -> None:
    headers = await cookie_for(api, "vanthu")
    t = archive.today
    span = f"from={(t - timedelta(days=45)).isoformat()}&to={(t - timedelta(days=35)).isoformat()}"
    _, html, _ = await get(api, f"/archive?{span}", headers)
    assert listed(html) == {archive.october}
    _, html, _ = await get(
        api, f"/archive?from={t.isoformat()}&to={(t + timedelta(days=5))}", headers
    )
    assert listed(html) == {archive.future}


async def test_the_unit(api: Any, archive: Archive) -> None:
    headers = await cookie_for(api, "vanthu")
    _, html, _ = await get(api, "/archive?unit=QB-STTTT", headers)
    assert listed(html) == {archive.november}
    assert '<option value="QB-STTTT" selected>' in html
    _, html, _ = await get(api, "/archive?unit=QB-STP", headers)
    assert listed(html) == {archive.cancelled}
    _, html, _ = await get(api, "/archive?unit=NO-SUCH-UNIT", headers)  # ignored, not an error
    assert listed(html) == {archive.november, archive.cancelled}


async def test_the_title_without_tone_marks_or_case(api: Any, archive: Archive) -> None:
    headers = await cookie_for(api, "vanthu")
    wide = f"from={archive.today - timedelta(days=60)}&to={archive.today}"
    _, html, _ = await get(api, f"/archive?{wide}&q=HOP+GIAO+BAN", headers)
    assert listed(html) == {archive.november, archive.october}
    _, html, _ = await get(api, f"/archive?{wide}&q=tong+ket+cong+tac", headers)
    assert listed(html) == {archive.cancelled}
    _, html, _ = await get(api, f"/archive?{wide}&q=s%E1%BB%9F+t%C6%B0+ph%C3%A1p", headers)
    assert listed(html) == {archive.cancelled}  # with tone marks too ("sở tư pháp")
    _, html, _ = await get(api, f"/archive?{wide}&q=thang+11", headers)
    assert listed(html) == {archive.november}
    assert fold("Đánh GIÁ") == fold("danh gia")


async def test_the_status(api: Any, archive: Archive) -> None:
    headers = await cookie_for(api, "vanthu")
    _, html, _ = await get(api, "/archive?status=cancelled", headers)
    assert listed(html) == {archive.cancelled}
    assert '<option value="cancelled" selected>Đã hủy</option>' in html
    _, html, _ = await get(api, "/archive?status=ended", headers)
    assert listed(html) == {archive.november}


async def test_a_chair_sees_the_meetings_its_unit_chaired(api: Any, archive: Archive) -> None:
    headers = await cookie_for(api, "chutri")  # QB
    wide = f"from={archive.today - timedelta(days=60)}&to={archive.today}"
    _, html, _ = await get(api, f"/archive?{wide}", headers)
    assert listed(html) == {archive.november, archive.october}
    assert '<option value="QB-SNV"' not in html  # only its own unit to choose
    status, _, _ = await get(api, f"/archive/meetings/{archive.november}", headers)
    assert status == 200
    for path in (
        f"/archive/meetings/{archive.cancelled}",
        f"/archive/meetings/{archive.cancelled}/print",
    ):
        status, html, _ = await get(api, path, headers)
        assert status == 403, path  # QB was invited there but did not chair
        assert CANCELLED not in html


# --- a meeting's record ----------------------------------------------------------------------


async def test_the_record_shows_attendance_per_unit(api: Any, archive: Archive) -> None:
    status, html, _ = await get(
        api, f"/archive/meetings/{archive.november}", await cookie_for(api, "vanthu")
    )
    assert status == 200
    assert "Báo cáo tình hình tháng 11" in html  # the agenda
    assert "Ủy ban nhân dân tỉnh Quảng Bình" in html
    assert "Được mời: 3 · có mặt: 2 · vắng: 1 · đến muộn: 1 (quá 5 phút sau giờ bắt đầu)" in html
    assert unit_row(html, "QB") == {
        "invited": "Có",
        "present": "Có",
        "first-join": "07:58",
        "last-leave": "09:00",
        "minutes": "62,0",
        "reconnects": "0",
        "late": "Không",
        "absent": "Không",
        "roll-call": "",
    }
    assert unit_row(html, "QB-SNV") == {
        "invited": "Có",
        "present": "Có",
        "first-join": "08:10",
        "last-leave": "08:40",
        "minutes": "28,0",  # 10 + 18: the two minutes away do not count
        "reconnects": "1",
        "late": "Có",
        "absent": "Không",
        "roll-call": f"{ROLL_CALL}: có mặt (3)",
    }
    assert unit_row(html, "QB-STTTT") == {
        "invited": "Có",
        "present": "Không",
        "first-join": "",
        "last-leave": "",
        "minutes": "0,0",
        "reconnects": "0",
        "late": "Không",
        "absent": "Có",
        "roll-call": "",
    }
    assert "Sở Thông tin và Truyền thông" in html
    # In English: the words and the number format change, the data does not.
    _, html, _ = await get(
        api, f"/archive/meetings/{archive.november}?lang=en", await cookie_for(api, "admin")
    )
    assert "Invited: 3 · present: 2 · absent: 1 · late: 1" in html
    assert unit_row(html, "QB-SNV")["minutes"] == "28.0"
    assert unit_row(html, "QB-STTTT")["absent"] == "Yes"


def roll_call_rows(html: str, number: int) -> dict[str, dict[str, str]]:
    """The rows of roll call ``number``'s table, by unit code, cell texts by field."""
    m = re.search(rf'<table class="roll-call" data-call="{number}">(.*?)</table>', html, re.DOTALL)
    assert m, f"no table of roll call {number}"
    out = {}
    for code, cells in re.findall(
        r'<tr data-rc-unit="([^"]+)"[^>]*>(.*?)</tr>', m.group(1), re.DOTALL
    ):
        fields = dict(re.findall(r'<td[^>]*data-field="([^"]+)">(.*?)</td>', cells, re.DOTALL))
        fields["delegates"] = "; ".join(re.findall(r"<li>(.*?)</li>", fields["delegates"]))
        out[code] = fields
    return out


async def test_the_roll_calls_with_headcounts_delegates_and_units_that_did_not_answer(
    api: Any,
) -> None:
    """Two roll calls: the first answered present (3 people, two names, one typed in
    decomposed Unicode and kept so), absent, and not at all; the chair unit is not
    expected to answer. Both the record and the print view show them."""
    day = datetime.now(LOCAL_ZONE).date() - timedelta(days=1)
    mid = await past_meeting(
        api, NOVEMBER, day, chair="QB", invited=["QB-SNV", "QB-STTTT", "QB-BOTRACH"]
    )
    ids = {c: await unit_id(api.database, c) for c in ("QB", "QB-SNV", "QB-STTTT")}
    decomposed = unicodedata.normalize("NFD", "Đặng Thị Ửng")
    names = ["Nguyễn Văn Ánh", decomposed]
    log = [
        ("p-qb", "QB", AttendanceKind.JOIN, 0, {}),
        ("p-snv", "QB-SNV", AttendanceKind.JOIN, 1, {}),
        ("p-stttt", "QB-STTTT", AttendanceKind.JOIN, 2, {}),
        ("p-snv", "QB-SNV", AttendanceKind.ROLL_CALL, 5,
         {"title": ROLL_CALL, "present": True, "headcount": 3, "delegates": names}),
        ("p-stttt", "QB-STTTT", AttendanceKind.ROLL_CALL, 6,
         {"title": ROLL_CALL, "present": False, "headcount": None, "delegates": []}),
        ("p-snv", "QB-SNV", AttendanceKind.ROLL_CALL, 40,
         {"title": "Cuối giờ", "present": True, "headcount": 2, "delegates": []}),
        ("p-qb", "QB", AttendanceKind.LEAVE, 50, {}),
    ]  # fmt: skip
    async with api.database.write() as session:
        for pid, code, kind, minute, info in log:
            session.add(
                AttendanceEvent(
                    meeting_id=mid,
                    unit_id=ids[code],
                    participant_session=pid,
                    kind=kind,
                    at=local(day, 8, minute),
                    client_info=info,
                )
            )
            await session.flush()
    headers = await cookie_for(api, "vanthu")
    for path in (f"/archive/meetings/{mid}", f"/archive/meetings/{mid}/print"):
        status, html, _ = await get(api, f"{path}?lang=en", headers)
        assert status == 200, path
        first = roll_call_rows(html, 1)
        assert list(first) == ["QB-BOTRACH", "QB-SNV", "QB-STTTT"]  # the tree order, no chair
        assert first["QB-SNV"] == {
            "answer": "Present",
            "headcount": "3",
            "delegates": f"Nguyễn Văn Ánh; {decomposed}",  # byte for byte, not recomposed
        }
        assert first["QB-STTTT"] == {"answer": "Absent", "headcount": "", "delegates": ""}
        assert first["QB-BOTRACH"] == {"answer": "No answer", "headcount": "", "delegates": ""}
        assert "Roll call 1: " + ROLL_CALL in html
        assert "Answered: 2 of 3 · present: 1 · absent: 1 · no answer: 1 · people in all: 3" in html
        second = roll_call_rows(html, 2)
        assert second["QB-SNV"]["headcount"] == "2"
        assert {r["answer"] for c, r in second.items() if c != "QB-SNV"} == {"No answer"}
        assert "Answered: 1 of 3 · present: 1 · absent: 0 · no answer: 2 · people in all: 2" in html
    # In Vietnamese the names are the same bytes.
    _, html, _ = await get(api, f"/archive/meetings/{mid}?lang=vi", headers)
    assert roll_call_rows(html, 1)["QB-SNV"]["delegates"] == f"Nguyễn Văn Ánh; {decomposed}"
    assert roll_call_rows(html, 1)["QB-SNV"]["answer"] == "Có mặt"


async def test_no_roll_call_no_roll_call_section(api: Any, archive: Archive) -> None:
    headers = await cookie_for(api, "vanthu")
    _, html, _ = await get(api, f"/archive/meetings/{archive.october}", headers)
    assert 'class="roll-call"' not in html
    _, html, _ = await get(api, f"/archive/meetings/{archive.november}", headers)
    assert roll_call_rows(html, 1)["QB-SNV"]["delegates"] == "Nguyễn Văn Ánh"
    # "No answer" until the Vietnamese catalog has it.
    assert roll_call_rows(html, 1)["QB-STTTT"]["answer"] in {"Không trả lời", "No answer"}


async def test_the_downloads_are_the_api_routes(api: Any, archive: Archive) -> None:
    headers = await cookie_for(api, "vanthu")
    _, html, _ = await get(api, f"/archive/meetings/{archive.november}", headers)
    csv_url = f"/api/meetings/{archive.november}/attendance.csv"
    xlsx_url = f"/api/meetings/{archive.november}/attendance.xlsx"
    assert f'id="download-csv" href="{csv_url}" download>Tải về CSV</a>' in html
    assert f'id="download-xlsx" href="{xlsx_url}" download>Tải về XLSX</a>' in html
    assert f'id="print-view" href="/archive/meetings/{archive.november}/print">In</a>' in html
    for url, kind in ((csv_url, "text/csv"), (xlsx_url, "spreadsheetml")):
        response = await api.client.get(url, headers=headers)  # the page's cookie is enough
        assert response.status == 200, url
        assert kind in response.headers["Content-Type"]
        assert len(await response.read()) > 100


async def test_the_recordings_with_status_and_progress(api: Any, archive: Archive) -> None:
    _, html, _ = await get(
        api, f"/archive/meetings/{archive.november}", await cookie_for(api, "vanthu")
    )
    section = html.split('id="recordings-heading"', 1)[1]
    first, second = archive.recordings
    assert f'<a href="/recordings/{first}">Bản ghi số 1</a>' in section
    assert f'<a href="/recordings/{second}">Bản ghi số 2</a>' in section
    row = re.search(rf'<tr data-recording="{first}">(.*?)</tr>', section, re.DOTALL)
    assert row
    assert "Đang làm." in row.group(1)
    assert 'value="0.42"' in row.group(1)
    assert "42 %" in row.group(1)
    assert "0:02" in row.group(1)  # the 2-second recording's duration
    failed = re.search(rf'<tr data-recording="{second}">(.*?)</tr>', section, re.DOTALL)
    assert failed
    assert "không thành công" in failed.group(1)


async def test_the_print_view_has_no_navigation_and_a_signature_block(
    api: Any, archive: Archive
) -> None:
    headers = await cookie_for(api, "vanthu")
    status, html, _ = await get(api, f"/archive/meetings/{archive.november}/print", headers)
    assert status == 200
    assert "site-nav" not in html
    assert "/static/nav.js" not in html
    assert "BIÊN BẢN ĐIỂM DANH" in html
    assert '<p class="signer">Người lập biểu</p>' in html
    assert '<p class="signer">Thủ trưởng đơn vị</p>' in html
    assert "(Ký, ghi rõ họ tên)" in html
    assert NOVEMBER in html
    assert "Được mời: 3 · có mặt: 2 · vắng: 1 · đến muộn: 1" in html
    assert unit_row(html, "QB-SNV")["minutes"] == "28,0"
    assert '<script type="module" src="/static/archive_print.js"></script>' in html
    _, html, _ = await get(api, f"/archive/meetings/{archive.november}/print?lang=en", headers)
    assert "Prepared by" in html
    assert "Head of unit" in html
    status, css, _ = await get(api, "/static/archive.css")
    assert status == 200
    assert "@media print" in css
    assert re.search(r"@media print\{.*header\.site,nav\.site-nav", css, re.DOTALL)


@pytest.mark.parametrize("mid", ["999999", "99999999999"])
async def test_an_unknown_meeting_is_a_404_page(api: Any, archive: Archive, mid: str) -> None:
    headers = await cookie_for(api, "vanthu")
    for path in (f"/archive/meetings/{mid}", f"/archive/meetings/{mid}/print"):
        status, html, _ = await get(api, path, headers)
        assert status == 404, path
        assert "Không có cuộc họp này" in html
        assert '<a href="/archive">Quay lại kho lưu trữ</a>' in html
