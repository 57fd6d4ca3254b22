"""The secretariat's pages: the meetings list and week, the meeting form, a meeting's
invitations; who may open them, the way back after signing in, the API calls the
pages' scripts make (same-origin only), and local days in Asia/Ho_Chi_Minh.

Pages are fetched from the real app over a real loopback socket (SQLite only:
what the pages show does not depend on the database).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import func, select

from conference.models import Invitation, Meeting
from conference.timezone import LOCAL_ZONE
from tests.conftest import cookie_for, page_csrf
from web.auth import CSRF_HEADER
from web.pages_frame import CONTENT_SECURITY_POLICY, local_path

TITLE = "Hội nghị triển khai nhiệm vụ phát triển kinh tế — xã hội năm 2027"
AGENDA = ["Báo cáo của Sở Kế hoạch và Đầu tư", "Ý kiến các huyện, thị xã, thành phố"]

PAGES = [
    "/meetings",
    "/meetings?view=day",
    "/meetings?view=week",
    "/meetings/new",
    "{edit}",
    "{invitations}",
]
KNOWN = {
    "vi": {"nav": "Lịch họp", "skip": "Chuyển đến nội dung chính", "out": "Đăng xuất"},
    "en": {"nav": "Meetings", "skip": "Skip to content", "out": "Sign out"},
}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hoinghi.db'}"


def origin(api: Any) -> str:
    return str(api.client.make_url("/")).rstrip("/")


async def get(api: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    response = await api.client.get(path, headers=headers or {}, allow_redirects=False)
    return response.status, await response.text(), response


def embedded(html: str, element_id: str) -> Any:
    m = re.search(
        rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.DOTALL
    )
    assert m, f"no #{element_id}"
    return json.loads(m.group(1))


def form_body(
    day: date, starts: str, ends: str, *, units: list[str], title: str = TITLE
) -> dict[str, Any]:
    """What static/meeting_form.js sends: local date and times with +07:00."""
    return {
        "title": title,
        "agenda": AGENDA,
        "starts_at": f"{day.isoformat()}T{starts}:00+07:00",
        "ends_at": f"{day.isoformat()}T{ends}:00+07:00",
        "chair_unit": "QB",
        "kind": "regular",
        "recording": True,
        "invited_units": units,
    }


def next_monday() -> date:
    today = datetime.now(LOCAL_ZONE).date()
    return today + timedelta(days=7 - today.weekday())


@pytest.fixture
async def meeting_id(api: Any) -> int:
    body = form_body(next_monday(), "08:00", "10:00", units=["QB-SNV", "QB-STTTT"])
    created = await api.call("POST", "/api/meetings", json=body, expect=201)
    return int(created["meeting"]["id"])


def paths(meeting_id: int) -> list[str]:
    return [
        p.format(
            edit=f"/meetings/{meeting_id}/edit", invitations=f"/meetings/{meeting_id}/invitations"
        )
        for p in PAGES
    ]


# --- who may open the pages ---------------------------------------------------------------


@pytest.mark.parametrize("locale", ["vi", "en"])
@pytest.mark.parametrize("username", ["thuky", "admin"])
async def test_every_page_opens_for_the_secretariat_and_admins(
    api: Any, meeting_id: int, username: str, locale: str
) -> None:
    headers = await cookie_for(api, username)
    for path in paths(meeting_id):
        sep = "&" if "?" in path else "?"
        status, html, response = await get(api, f"{path}{sep}lang={locale}", headers)
        assert status == 200, (path, html[:300])
        assert f'<html lang="{locale}">' in html
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        for text in KNOWN[locale].values():
            assert text in html, (path, text)
        assert '<main id="content"' in html
        assert "<script>" not in html  # no inline script: the CSP would block it


@pytest.mark.parametrize("username", ["vanhanh", "vanthu", "chutri"])
async def test_other_roles_get_a_403_page(api: Any, meeting_id: int, username: str) -> None:
    headers = await cookie_for(api, username)
    for path in paths(meeting_id):
        status, html, _ = await get(api, path, headers)
        assert status == 403, path
        assert "Không được phép" in html
        assert TITLE not in html


async def test_not_signed_in_goes_to_login_and_comes_back(api: Any, meeting_id: int) -> None:
    for path in [*paths(meeting_id), "/meetings?q=giao+ban&from=2026-01-01"]:
        status, _, response = await get(api, path)
        assert status == 302, path
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login"
        assert parse_qs(location.query)["next"] == [path]
    # The login page hands the same path to login.js.
    _, html, _ = await get(api, "/login?next=%2Fmeetings%2Fnew")
    assert embedded(html, "login-data")["next"] == "/meetings/new"
    assert embedded(html, "login-data")["homes"]["secretariat"] == "/meetings"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/meetings",
        "/\\evil.example",
        "javascript:alert(1)",
        "meetings",
        "/meetings\n",
        "",
    ],
)
async def test_a_next_pointing_off_site_is_ignored(api: Any, target: str) -> None:
    response = await api.client.get("/login", params={"next": target})
    html = await response.text()
    assert response.status == 200
    assert embedded(html, "login-data")["next"] is None
    assert local_path(target) is None


def test_local_paths_are_kept() -> None:
    assert (
        local_path("/meetings?view=week&week=2026-11-30") == "/meetings?view=week&week=2026-11-30"
    )
    assert local_path("/meetings/12/invitations") == "/meetings/12/invitations"


# --- changes go through the API, same-origin only ---------------------------------------


async def meeting_count(api: Any) -> int:
    async with api.database.read() as session:
        return int((await session.exec(select(func.count()).select_from(Meeting))).one())


async def test_pages_take_no_post(api: Any) -> None:
    headers = await cookie_for(api, "thuky")
    for path in ("/meetings", "/meetings/new"):
        response = await api.client.post(path, headers={**headers, "Origin": origin(api)})
        assert response.status == 405


@pytest.mark.parametrize(
    "forged",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_a_cross_site_form_post_is_refused_and_changes_nothing(
    api: Any, forged: dict[str, str]
) -> None:
    headers = await cookie_for(api, "thuky")
    before = await meeting_count(api)
    body = form_body(next_monday(), "08:00", "09:00", units=["QB-SNV"])
    response = await api.client.post("/api/meetings", json=body, headers={**headers, **forged})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "cross_site"
    assert await meeting_count(api) == before


async def test_a_same_origin_post_without_the_pages_csrf_token_is_refused(api: Any) -> None:
    headers = {**(await cookie_for(api, "thuky")), "Origin": origin(api)}
    before = await meeting_count(api)
    body = form_body(next_monday(), "08:00", "09:00", units=["QB-SNV"])
    for token in (None, "forged"):
        extra = {} if token is None else {CSRF_HEADER: token}
        response = await api.client.post("/api/meetings", json=body, headers={**headers, **extra})
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "csrf_failed"
    assert await meeting_count(api) == before


async def test_every_changing_form_carries_the_sessions_csrf_token(
    api: Any, meeting_id: int
) -> None:
    headers = await cookie_for(api, "thuky")
    token = await page_csrf(api, headers)
    for path in (
        "/meetings/new",
        f"/meetings/{meeting_id}/edit",
        f"/meetings/{meeting_id}/invitations",
    ):
        status, html, _ = await get(api, path, headers)
        assert status == 200, path
        assert f'<meta name="csrf-token" content="{token}">' in html, path
        forms = re.findall(r"(<form\b[^>]*>)(.*?)</form>", html, re.S)
        changing = [inner for tag, inner in forms if 'method="get"' not in tag]
        assert changing, path
        for form in changing:
            assert f'<input type="hidden" name="csrf_token" value="{token}">' in form, path
    # The search form is a GET: a token there would leak into the address bar.
    status, html, _ = await get(api, "/meetings", headers)
    assert 'name="csrf_token"' not in html


async def test_the_form_flow_creates_exactly_that_meeting(api: Any) -> None:
    headers = {**(await cookie_for(api, "thuky")), "Origin": origin(api)}
    status, html, _ = await get(api, "/meetings/new", headers)
    assert status == 200
    headers[CSRF_HEADER] = await page_csrf(api, headers)
    for code in ("QB-SNV", "QB-STTTT", "QB"):
        assert f'value="{code}"' in html
    day = next_monday() + timedelta(days=2)
    body = form_body(day, "14:00", "16:30", units=["QB-SNV", "QB-STTTT", "QB-SYT"])
    response = await api.client.post("/api/meetings", json=body, headers=headers)
    assert response.status == 201, await response.text()
    meeting = (await response.json())["meeting"]
    async with api.database.read() as session:
        row = await session.get(Meeting, meeting["id"])
        assert row is not None
        assert row.title == TITLE  # byte-exact, no normalisation
        assert row.agenda == AGENDA
        assert row.starts_at.astimezone(UTC) == datetime.combine(
            day, datetime.min.time(), tzinfo=UTC
        ) + timedelta(hours=7)  # 14:00 local is 07:00 UTC
        assert row.recording is True
        invited = (
            await session.exec(select(func.count()).where(Invitation.meeting_id == row.id))
        ).one()
        assert invited == 4  # the chair unit and three invited units
    # The invitations page shows one join link per unit, with its .ics and actions.
    status, html, _ = await get(api, f"/meetings/{meeting['id']}/invitations?created=1", headers)
    assert status == 200
    assert TITLE.encode() in html.encode("utf-8")
    links = re.findall(r'class="join-link" id="link-([^"]+)" readonly value="([^"]+)"', html)
    assert sorted(u for u, _ in links) == ["QB", "QB-SNV", "QB-STTTT", "QB-SYT"]
    assert all("/join/" in url for _, url in links)
    assert f'href="/api/meetings/{meeting["id"]}/invitations/QB-SNV/calendar.ics"' in html
    assert 'class="secondary revoke" data-unit="QB-SNV"' in html
    assert "Đã lên lịch cuộc họp" in html
    ics = await api.client.get(
        f"/api/meetings/{meeting['id']}/invitations/QB-SNV/calendar.ics", headers=headers
    )
    assert ics.status == 200
    assert "BEGIN:VCALENDAR" in await ics.text()


async def test_the_edit_form_is_filled_in(api: Any, meeting_id: int) -> None:
    headers = await cookie_for(api, "thuky")
    status, html, _ = await get(api, f"/meetings/{meeting_id}/edit", headers)
    assert status == 200
    assert f'value="{TITLE}"' in html
    for item in AGENDA:
        assert f">{item}</textarea>" in html
    assert 'value="08:00"' in html
    assert 'value="10:00"' in html
    assert f'value="{next_monday().isoformat()}"' in html
    data = embedded(html, "meeting-form-data")
    assert data["mode"] == "edit"
    assert data["meeting_id"] == meeting_id
    assert sorted(data["invited"]) == ["QB-SNV", "QB-STTTT"]
    assert 'value="QB-SNV" checked' in html


async def test_an_unknown_meeting_is_404(api: Any) -> None:
    headers = await cookie_for(api, "thuky")
    for path in ("/meetings/999999/edit", "/meetings/999999/invitations"):
        status, html, _ = await get(api, path, headers)
        assert status == 404
        assert "Không có cuộc họp này" in html


# --- the list and the week -----------------------------------------------------------------


async def test_the_list_searches_titles_without_regard_to_case(api: Any, meeting_id: int) -> None:
    other = form_body(next_monday(), "13:00", "14:00", units=["QB-SNV"], title="Giao ban tuần")
    other["chair_unit"] = "QB-STTTT"
    await api.call("POST", "/api/meetings", json=other, expect=201)
    headers = await cookie_for(api, "thuky")
    _, html, _ = await get(api, "/meetings", headers)
    assert TITLE in html
    assert "Giao ban tuần" in html
    _, html, _ = await get(api, "/meetings?q=KINH+T%E1%BA%BE", headers)  # "KINH TẾ"
    assert TITLE in html
    assert "Giao ban tuần" not in html
    day = next_monday()
    _, html, _ = await get(
        api, f"/meetings?from={day + timedelta(days=1)}&to={day + timedelta(days=3)}", headers
    )
    assert TITLE not in html
    assert "Không tìm thấy cuộc họp nào." in html


async def test_the_week_view_places_meetings_on_their_local_day(api: Any) -> None:
    monday = next_monday() + timedelta(days=7)
    late = {  # 23:30 on Monday in Hà Nội is 16:30 UTC on Monday
        "title": "Họp khẩn về phòng chống bão",
        "starts_at": f"{monday.isoformat()}T16:30:00Z",
        "ends_at": f"{monday.isoformat()}T17:15:00Z",
        "chair_unit": "QB",
        "kind": "extraordinary",
        "invited_units": ["QB-SNV"],
    }
    after_midnight = {  # 00:30 on Tuesday in Hà Nội is still Monday (17:30) in UTC
        **late,
        "title": "Họp trực ban đêm",
        "starts_at": f"{monday.isoformat()}T17:30:00Z",
        "ends_at": f"{monday.isoformat()}T18:00:00Z",
        "chair_unit": "QB-STTTT",
    }
    first = (await api.call("POST", "/api/meetings", json=late, expect=201))["meeting"]["id"]
    second = (await api.call("POST", "/api/meetings", json=after_midnight, expect=201))["meeting"][
        "id"
    ]
    headers = await cookie_for(api, "thuky")
    # Any day of the week opens the week from its Monday.
    wednesday = monday + timedelta(days=2)
    status, html, _ = await get(api, f"/meetings?view=week&week={wednesday}", headers)
    assert status == 200
    days = re.findall(r'<section class="day[^"]*" data-day="([\d-]+)"', html)
    assert days == [(monday + timedelta(days=i)).isoformat() for i in range(7)]
    sections = dict(re.findall(r'data-day="([\d-]+)"(.*?)</section>', html, re.DOTALL))
    assert f'data-meeting="{first}"' in sections[monday.isoformat()]
    assert "23:30–00:15" in sections[monday.isoformat()]
    tuesday = (monday + timedelta(days=1)).isoformat()
    assert f'data-meeting="{second}"' in sections[tuesday]
    assert "00:30–01:00" in sections[tuesday]
    assert f'data-meeting="{second}"' not in sections[monday.isoformat()]
    assert "Thứ Hai" in html or "thứ hai" in html.lower()
    _, html_en, _ = await get(api, f"/meetings?view=week&week={wednesday}&lang=en", headers)
    assert "Monday" in html_en
    # Each day of the week opens that day's own view.
    assert f'href="/meetings?view=day&amp;day={tuesday}"' in html
    # The day view: the meetings held during that local day (Monday's 23:30–00:15
    # runs into Tuesday), and links to the days either side.
    status, html, _ = await get(api, f"/meetings?view=day&day={tuesday}&lang=vi", headers)
    assert status == 200
    rows = re.findall(r'<tr data-meeting="(\d+)">', html)
    assert rows == [str(first), str(second)]
    assert "00:30–01:00" in html
    assert f'href="/meetings?view=day&amp;day={monday.isoformat()}"' in html
    assert f'href="/meetings?view=day&amp;day={(monday + timedelta(days=2)).isoformat()}"' in html
    assert "Thứ Ba" in html or "thứ ba" in html.lower()
    status, html, _ = await get(api, f"/meetings?view=day&day={monday.isoformat()}", headers)
    assert re.findall(r'<tr data-meeting="(\d+)">', html) == [str(first)]


def nav_labels(html: str) -> list[str]:
    m = re.search(r'<nav class="site-nav"[^>]*>(.*?)</nav>', html, re.DOTALL)
    assert m, html[:500]
    return re.findall(r"<li><a [^>]*>([^<]+)</a></li>", m.group(1))


async def test_the_navigation_bar_follows_the_role(api: Any) -> None:
    # Only pages that exist are linked (today's meetings and the administration
    # pages are not built yet).
    expected: dict[str, list[str]] = {
        "thuky": ["Lịch họp"],
        "admin": ["Lịch họp", "Lưu trữ", "Quản trị"],
        "vanthu": ["Lưu trữ"],
        "vanhanh": ["Hôm nay"],
        "chutri": ["Hôm nay", "Lưu trữ"],  # today; the meetings its unit chaired
    }
    for username, labels in expected.items():
        _, html, _ = await get(api, "/meetings", await cookie_for(api, username))
        assert nav_labels(html) == labels, username
        assert 'id="sign-out"' in html
        assert '<a class="skip-link" href="#content">' in html
    # Signed out pages (the login page) have no navigation bar.
    _, html, _ = await get(api, "/login")
    assert "site-nav" not in html
