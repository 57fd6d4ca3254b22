"""The operators' page ``/today`` (chairs and admins too): the meetings of the
account's unit today and in the next 7 days (local days, Asia/Ho_Chi_Minh), each
with the unit's own join link, a device-check link, a revoked link said as such,
and a countdown before the start; the 403 page for the secretariat and clerks.

Meetings are scheduled through the API as the secretariat, as the signaling tests
do; the page's link is compared with the one the invitations API gives the unit.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from conference.models import Account, Meeting, Role
from conference.timezone import LOCAL_ZONE
from tests.conftest import _PASSWORD_HASH, cookie_for
from web.pages_frame import CONTENT_SECURITY_POLICY, LANGUAGES

CHAIR, SNV, STTTT, TANTRACH = "QB", "QB-SNV", "QB-STTTT", "QB-BOTRACH-TANTRACH"


async def get(api: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    response = await api.client.get(path, headers=headers or {}, allow_redirects=False)
    return response.status, await response.text(), response


async def schedule(
    api: Any,
    title: str,
    start: datetime,
    *,
    chair: str = CHAIR,
    invited: list[str] | None = None,
) -> int:
    body = {
        "title": title,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat(),
        "chair_unit": chair,
        "invited_units": invited if invited is not None else [SNV, STTTT, TANTRACH],
    }
    created = await api.call("POST", "/api/meetings", json=body, expect=201)
    return int(created["meeting"]["id"])


async def api_join_url(api: Any, meeting_id: int, unit: str) -> str | None:
    body = await api.call("GET", f"/api/meetings/{meeting_id}/invitations", expect=200)
    (invitation,) = [i for i in body["invitations"] if i["unit"] == unit]
    return invitation["join_url"]  # type: ignore[no-any-return]


def section(html: str, list_id: str) -> str:
    m = re.search(rf'<ul class="today-list" id="{list_id}">(.*?)</ul>', html, re.DOTALL)
    assert m, html[:1000]
    return m.group(1)


def card(html: str, meeting_id: int) -> str:
    m = re.search(
        rf'<li class="today-meeting[^"]*" data-meeting="{meeting_id}">(.*?)</li>', html, re.DOTALL
    )
    assert m, f"meeting {meeting_id} not on the page"
    return m.group(1)


def links(fragment: str, cls: str) -> list[str]:
    return [
        html_lib.unescape(href)
        for href in re.findall(rf'<a class="{cls}" href="([^"]+)"', fragment)
    ]


def claims(url: str) -> dict[str, Any]:
    """A join token's claims without ``iat`` (the second it was signed in)."""
    token = url.rsplit("/", 1)[1].split("#", 1)[0]
    data = jwt.decode(token, options={"verify_signature": False})
    data.pop("iat")
    return data  # type: ignore[no-any-return]


def soon(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def tomorrow_at_nine() -> datetime:
    day = datetime.now(LOCAL_ZONE).date() + timedelta(days=1)
    return datetime.combine(day, time(9, 0), tzinfo=LOCAL_ZONE)


def list_for(start: datetime) -> str:
    """Which list a meeting starting at ``start`` belongs to (today or the next days)."""
    today = datetime.now(LOCAL_ZONE).date()
    return "today-meetings" if start.astimezone(LOCAL_ZONE).date() == today else "next-meetings"


async def test_operator_sees_its_units_meetings_with_its_own_join_link(api: Any) -> None:
    start = soon(30)
    ours = await schedule(api, "Giao ban trực tuyến Sở Nội vụ", start)
    theirs = await schedule(
        api, "Họp riêng Sở Thông tin", soon(40), chair=STTTT, invited=[TANTRACH]
    )
    status, html, response = await get(api, "/today", await cookie_for(api, "vanhanh"))
    assert status == 200
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert '<script type="module" src="/static/today.js"></script>' in html
    assert "<script>" not in html  # no inline script
    listed = section(html, list_for(start))
    assert f'data-meeting="{ours}"' in listed
    assert "Giao ban trực tuyến Sở Nội vụ" in listed
    # Not a meeting the unit is not invited to.
    assert f'data-meeting="{theirs}"' not in html
    assert "Họp riêng Sở Thông tin" not in html
    ours_card = card(html, ours)
    local_start = start.astimezone(LOCAL_ZONE)
    local_end = local_start + timedelta(hours=1)
    assert f"{local_start:%H:%M}–{local_end:%H:%M}" in ours_card
    assert "Vào phòng họp" in ours_card
    assert "Kiểm tra thiết bị" in ours_card
    assert "Đơn vị chủ trì: Ủy ban nhân dân tỉnh Quảng Bình" in ours_card
    assert "Vai trò của đơn vị: điểm cầu tham dự" in ours_card
    assert '<span class="status status-scheduled">Đã lên lịch</span>' in ours_card
    # The join link is the unit's own: what the invitations API gives QB-SNV.
    (join,) = links(ours_card, "button join")
    expected = await api_join_url(api, ours, SNV)
    assert expected is not None
    assert join.rsplit("/", 1)[0] == expected.rsplit("/", 1)[0]
    assert claims(join) == claims(expected)
    assert claims(join)["sub"] == SNV
    other = await api_join_url(api, ours, STTTT)
    assert other is not None
    assert claims(join) != claims(other)
    # The device check is its own page: a join link opens only shortly before the start.
    assert links(ours_card, "device-check") == ["/devicecheck"]


async def test_a_meeting_tomorrow_is_in_the_next_days(api: Any) -> None:
    tomorrow = await schedule(api, "Hội nghị ngày mai", tomorrow_at_nine())
    _, html, _ = await get(api, "/today", await cookie_for(api, "vanhanh"))
    assert f'data-meeting="{tomorrow}"' in section(html, "next-meetings")
    assert f'data-meeting="{tomorrow}"' not in section(html, "today-meetings")
    assert "09:00–10:00" in card(html, tomorrow)
    # More than 8 days ahead: not on the page.
    far = datetime.combine(
        datetime.now(LOCAL_ZONE).date() + timedelta(days=9), time(9, 0), tzinfo=LOCAL_ZONE
    )
    later = await schedule(api, "Hội nghị tuần sau nữa", far)
    _, html, _ = await get(api, "/today", await cookie_for(api, "vanhanh"))
    assert f'data-meeting="{later}"' not in html


async def test_a_revoked_invitation_says_so_and_has_no_join_link(api: Any) -> None:
    mid = await schedule(api, "Họp đã thu hồi đường dẫn", soon(30))
    await api.call("POST", f"/api/meetings/{mid}/invitations/{SNV}/revoke", expect=200)
    assert await api_join_url(api, mid, SNV) is None
    _, html, _ = await get(api, "/today", await cookie_for(api, "vanhanh"))
    revoked = card(html, mid)
    assert "Đường dẫn của đơn vị đã bị thu hồi; hãy liên hệ Văn phòng." in revoked
    assert "/join/" not in revoked
    assert links(revoked, "button join") == []
    assert links(revoked, "device-check") == []
    assert "data-starts" not in revoked


async def test_the_countdown_before_the_start(api: Any) -> None:
    start = soon(30)
    mid = await schedule(api, "Họp sắp bắt đầu", start)
    _, html, _ = await get(api, "/today", await cookie_for(api, "vanhanh"))
    m = re.search(r'<p class="countdown" data-starts="([^"]+)"[^>]*>([^<]*)</p>', card(html, mid))
    assert m, card(html, mid)
    # The script's start time, in ISO, is the meeting's start.
    assert abs(datetime.fromisoformat(m.group(1)) - start) < timedelta(seconds=1)
    assert m.group(2) == "Bắt đầu sau 30 phút"
    _, html, _ = await get(api, "/today?lang=en", await cookie_for(api, "vanhanh"))
    assert "Starts in 30 minutes" in card(html, mid)
    # The script's text comes from the same catalog.
    assert '"Starts in {n} minutes": "Starts in {n} minutes"' in html
    # A meeting already running has no countdown.
    live = await schedule(api, "Họp đang diễn ra", soon(120))
    async with api.database.write() as session:
        meeting = await session.get(Meeting, live)
        assert meeting is not None
        meeting.starts_at = soon(-10)
        session.add(meeting)
    _, html, _ = await get(api, "/today", await cookie_for(api, "vanhanh"))
    assert "data-starts" not in card(html, live)


async def test_vietnamese_and_english(api: Any) -> None:
    mid = await schedule(api, "Họp song ngữ", soon(30))
    headers = await cookie_for(api, "vanhanh")
    _, vi, _ = await get(api, "/today", headers)
    assert '<html lang="vi">' in vi
    assert "<h1>Hôm nay</h1>" in vi
    assert "Cuộc họp hôm nay" in vi
    assert "7 ngày tới" in vi
    assert "Vào phòng họp" in card(vi, mid)
    assert '"Bắt đầu sau {n} phút"' in vi  # the script's messages
    _, en, _ = await get(api, "/today?lang=en", headers)
    assert '<html lang="en">' in en
    assert "<h1>Today</h1>" in en
    assert "s meetings</h2>" in en
    assert "The next 7 days" in en
    en_card = card(en, mid)
    assert "Join the meeting" in en_card
    assert "Device check" in en_card
    assert "role: participating site" in en_card
    assert "Chair unit: " in en_card
    assert "Vào phòng họp" not in en


async def test_chair_and_admin_open_it_others_get_403(api: Any) -> None:
    for username in ("chutri", "admin"):
        status, _, _ = await get(api, "/today", await cookie_for(api, username))
        assert status == 200, username
    for username in ("thuky", "vanthu"):
        status, html, _ = await get(api, "/today", await cookie_for(api, username))
        assert status == 403, username
        assert "Không được phép" in html or "Tài khoản của bạn không được mở trang này." in html


async def test_not_signed_in_goes_to_login(api: Any) -> None:
    status, _, response = await get(api, "/today")
    assert status == 302
    target = urlsplit(response.headers["Location"])
    assert target.path == "/login"
    assert parse_qs(target.query) == {"next": ["/today"]}


async def test_an_account_without_a_unit_is_told_so(api: Any) -> None:
    await schedule(api, "Họp của các đơn vị", soon(30))
    async with api.database.write() as session:
        session.add(
            Account(
                username="khongdonvi",
                display_name="Không đơn vị",
                password_hash=_PASSWORD_HASH,
                roles=[Role.OPERATOR.value],
                unit_id=None,
            )
        )
    status, html, _ = await get(api, "/today", await cookie_for(api, "khongdonvi"))
    assert status == 200
    assert 'class="error no-unit"' in html
    assert "Tài khoản của bạn chưa thuộc đơn vị nào" in html
    assert "data-meeting=" not in html
    assert "/join/" not in html
    _, html, _ = await get(api, "/today?lang=en", await cookie_for(api, "khongdonvi"))
    assert "Your account belongs to no unit" in html


async def test_operators_and_chairs_land_on_today(api: Any) -> None:
    # The sign-in page sends each role home (static/login.js reads these).
    _, html, _ = await get(api, "/login")
    m = re.search(r'<script type="application/json" id="login-data">(.*?)</script>', html, re.S)
    assert m, html[:800]
    homes = json.loads(m.group(1))["homes"]
    assert homes["operator"] == "/today"
    assert homes["chair"] == "/today"
    # The 403 page's "Go to your start page" link.
    for username in ("vanhanh", "chutri"):
        status, html, _ = await get(api, "/meetings", await cookie_for(api, username))
        assert status == 403
        assert '<p><a href="/today">' in html, username


# --- notices of a cancel or a reschedule ----------------------------------------------


def notice(html: str, mid: int) -> str:
    m = re.search(r'<p class="notice[^"]*" role="status">([^<]*)</p>', card(html, mid))
    return html_lib.unescape(m.group(1)) if m else ""


async def test_a_cancelled_meeting_stays_listed_with_the_offices_reason(api: Any) -> None:
    mid = await schedule(api, "Họp bị huỷ", soon(90))
    reason = "Lãnh đạo UBND tỉnh đi công tác đột xuất <b>&"
    await api.call("POST", f"/api/meetings/{mid}/cancel", json={"reason": reason}, expect=200)
    _, html, _ = await get(api, "/today?lang=en", await cookie_for(api, "vanhanh"))
    text = notice(html, mid)
    assert text.startswith("Cancelled by the Office on ")
    assert text.endswith("Reason: " + reason)  # byte-exact, escaped in the markup
    assert "<b>&" not in card(html, mid)
    assert links(card(html, mid), "button join") == []


async def test_a_rescheduled_meeting_says_when_it_was_and_why(api: Any) -> None:
    first = soon(60)
    mid = await schedule(api, "Họp dời giờ", first)
    moved = first + timedelta(hours=2)
    body = {
        "starts_at": moved.isoformat(),
        "ends_at": (moved + timedelta(hours=1)).isoformat(),
        "reason": "Trùng lịch họp với Bộ Nội vụ",
    }
    await api.call("POST", f"/api/meetings/{mid}/reschedule", json=body, expect=200)
    _, html, _ = await get(api, "/today?lang=en", await cookie_for(api, "vanhanh"))
    text = notice(html, mid)
    english = api.client.app[LANGUAGES]["en"]
    assert text.startswith("Moved by the Office on "), text
    assert f"; it was {english.format_datetime(first)}." in text, text
    assert text.endswith("Reason: Trùng lịch họp với Bộ Nội vụ")
    # The card shows the new times and still has the unit's link.
    assert moved.astimezone(LOCAL_ZONE).strftime("%H:%M") in card(html, mid)
    assert len(links(card(html, mid), "button join")) == 1


async def test_an_edit_that_keeps_the_times_gives_no_notice(api: Any) -> None:
    mid = await schedule(api, "Họp đổi tên", soon(60))
    await api.call("PATCH", f"/api/meetings/{mid}", json={"title": "Họp đã đổi tên"}, expect=200)
    _, html, _ = await get(api, "/today?lang=en", await cookie_for(api, "vanhanh"))
    assert "Họp đã đổi tên" in card(html, mid)
    assert notice(html, mid) == ""


async def test_today_always_offers_the_device_check(api: Any) -> None:
    # With no meeting at all, an operator can still check the room's devices.
    _, html, _ = await get(api, "/today", await cookie_for(api, "vanhanh"))
    assert 'href="/devicecheck" class="device-check-any"' in html


async def test_the_device_check_page_opens_for_every_signed_in_account(api: Any) -> None:
    for username in ("vanhanh", "chutri", "thuky", "vanthu", "admin"):
        status, html, _ = await get(api, "/devicecheck?lang=en", await cookie_for(api, username))
        assert status == 200, username
        assert 'id="dc-preview"' in html
        assert 'id="dc-speaker"' in html
        assert (
            '<button id="join-button" type="button" disabled>Save these settings</button>' in html
        )
        assert '<script type="module" src="/static/devicecheck_page.js' in html
    status, _, response = await get(api, "/devicecheck")
    assert status == 302
    assert response.headers["Location"].startswith("/login?next=")
