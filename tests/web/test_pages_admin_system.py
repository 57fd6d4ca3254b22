"""The administrators' system pages: ``/admin`` (to the status page),
``/admin/status``, ``/admin/webhooks``, ``/admin/webhooks/{id}`` and
``/admin/retention``.

Who: accounts with role admin; every other role gets the 403 page, nobody signed
in is sent to the login page. The status page shows a real room that real
signaling clients joined; the webhook pages list real subscriptions and
delivery rows (Vietnamese text byte-exact, times in Asia/Ho_Chi_Minh); changes
the pages' scripts make go through the JSON API with the session cookie and the
page's CSRF token.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from conference.models import DeliveryStatus, WebhookDelivery
from conference.timezone import utcnow
from tests.conftest import cookie_for
from tests.recordings.recording_fixtures import add_meeting, add_recording
from tests.signaling.conftest import CHAIR, SNV, schedule
from web.appkeys import CONFIG
from web.i18n import load_languages
from web.pages_frame import CONTENT_SECURITY_POLICY

PAGES = ["/admin", "/admin/status", "/admin/webhooks", "/admin/webhooks/1", "/admin/retention"]
NOT_ADMIN = ["thuky", "vanthu", "chutri", "vanhanh"]
TITLE = "Họp giao ban trực tuyến — Sở Thông tin và Truyền thông"
RECEIVER = "https://nhan-su-kien.quangbinh.gov.vn/hoinghi?nguồn=hội-nghị"
ERROR_TEXT = "HTTP 503 Máy chủ đang bảo trì — thử lại sau"
VI = load_languages()["vi"]


async def get(api: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    response = await api.client.get(path, headers=headers or {}, allow_redirects=False)
    return response.status, await response.text(), response


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, "a signed-in page carries its CSRF token"
    return found.group(1)


def no_inline_script_or_style(html: str) -> None:
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert "<style" not in html
    assert " style=" not in html
    assert " onclick=" not in html


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


# --- who may open the pages ---------------------------------------------------------------


async def test_nobody_signed_in_is_sent_to_the_login_page(api: Any) -> None:
    for path in PAGES:
        status, _, response = await get(api, path)
        assert status == 302, path
        target = urlsplit(response.headers["Location"])
        assert target.path == "/login"
        assert parse_qs(target.query)["next"] == [path]


@pytest.mark.parametrize("username", NOT_ADMIN)
async def test_other_roles_get_the_403_page(api: Any, username: str) -> None:
    headers = await cookie_for(api, username)
    for path in PAGES:
        status, html, _ = await get(api, path, headers)
        assert status == 403, (username, path)
        assert 'href="/admin/status"' not in html  # no administration tabs
        assert 'href="/admin"' not in html  # nor the menu entry


async def test_admin_lands_on_the_status_page(api: Any) -> None:
    headers = await cookie_for(api, "admin")
    status, _, response = await get(api, "/admin", headers)
    assert status == 302
    assert response.headers["Location"] == "/admin/status"
    for path in PAGES[1:4:2]:  # /admin/status, /admin/webhooks/1 (missing)
        status, html, response = await get(api, path, headers)
        assert status in (200, 404), path
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert 'class="admin-tabs"' in html
        no_inline_script_or_style(html)


# --- /admin/status ------------------------------------------------------------------------


async def test_the_status_page_shows_a_live_room_and_its_sites(api: Any) -> None:
    headers = await cookie_for(api, "admin")
    meeting = await schedule(api, title=TITLE, recording=True)
    async with meeting.client(CHAIR), meeting.client(SNV):
        status, html, _ = await get(api, "/admin/status", headers)
        assert status == 200
        names = await unit_names(api, CHAIR, SNV)
        body = text_of(html)
        assert TITLE in body
        for name in names:
            assert name in body
        row = re.search(
            rf'<tr data-meeting="{meeting.id}">(.*?)</tr>\s*(?=<tr|</tbody>)', html, re.S
        )
        assert row, "the room has a row"
        cells = re.findall(r'<td class="number"[^>]*>(\d+)</td>', row.group(1))
        assert cells == ["2", "0"]  # connected, in the lobby
        # Media is off in these tests: the page says so; no worker table.
        assert '<table class="workers" hidden id="workers-table">' in html
        assert 'id="status-live"' in html
        assert 'aria-live="polite"' in html
        assert 'src="/static/admin_status.js"' in html
        # The version and the database's dialect.
        assert api.database.dialect in body
    # Everyone left: the room may stay open (it is scheduled), with nobody connected.
    status, html, _ = await get(api, "/admin/status", headers)
    row = re.search(rf'<tr data-meeting="{meeting.id}">(.*?)</tr>', html, re.S)
    if row:
        assert re.findall(r'<td class="number"[^>]*>(\d+)</td>', row.group(1))[0] == "0"


async def unit_names(api: Any, *codes: str) -> list[str]:
    from sqlmodel import select

    from conference.models import Unit

    async with api.database.read() as session:
        rows = (await session.exec(select(Unit).where(Unit.code.in_(codes)))).all()  # type: ignore[attr-defined]
    return [u.name for u in rows]


async def test_the_status_page_scripts_and_styles_are_served(api: Any) -> None:
    for name in ("admin_status.js", "admin_webhooks.js", "admin_retention.js", "admin_system.css"):
        response = await api.client.get(f"/static/{name}")
        assert response.status == 200, name


# --- /admin/webhooks ----------------------------------------------------------------------


async def add_deliveries(api: Any, webhook_id: int, n: int, **kw: Any) -> list[int]:
    ids = []
    base = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    async with api.database.write() as session:
        for i in range(n):
            row = WebhookDelivery(
                subscription_id=webhook_id,
                event_id=uuid.uuid4().hex,
                event=kw.get("event", "room.started"),
                payload={"data": {"meeting_id": 7, "title": TITLE}},
                status=kw.get("status", DeliveryStatus.DELIVERED),
                attempts=kw.get("attempts", 1),
                last_status=kw.get("last_status", 200),
                last_error=kw.get("last_error", ""),
                # Pending rows fall due tomorrow: the running app leaves them alone.
                next_attempt_at=utcnow() + timedelta(days=1),
                created_at=base + timedelta(minutes=i),
                delivered_at=base + timedelta(minutes=i, seconds=1)
                if kw.get("status", DeliveryStatus.DELIVERED) is DeliveryStatus.DELIVERED
                else None,
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            ids.append(row.id)
    return ids


async def test_the_webhooks_page_lists_subscriptions_with_their_counts(api: Any) -> None:
    created = await api.call(
        "POST",
        "/api/webhooks",
        as_user="admin",
        json={"url": RECEIVER, "events": ["room.started", "recording.finished"]},
        expect=201,
    )
    other = await api.call(
        "POST",
        "/api/webhooks",
        as_user="admin",
        json={"url": "https://khac.example.vn/hook", "events": ["*"], "active": False},
        expect=201,
    )
    wid = created["id"]
    await add_deliveries(api, wid, 3)
    await add_deliveries(
        api, wid, 2, status=DeliveryStatus.GIVEN_UP, last_status=503, last_error=ERROR_TEXT
    )
    await add_deliveries(api, wid, 1, status=DeliveryStatus.PENDING, last_status=None)

    headers = await cookie_for(api, "admin")
    status, html, _ = await get(api, "/admin/webhooks", headers)
    assert status == 200
    no_inline_script_or_style(html)
    assert RECEIVER in unescape(html)
    assert created["secret"] not in html  # the secret is shown once, at creation only
    assert other["secret"] not in html
    row = re.search(rf'<tr data-webhook="{wid}">(.*?)</tr>', html, re.S)
    assert row
    counts = re.findall(r'<td class="number[^"]*"[^>]*>(\d+)</td>', row.group(1))
    assert counts == ["1", "3", "2"]  # pending, delivered, given up
    assert "room.started, recording.finished" in row.group(1)
    inactive = re.search(rf'<tr data-webhook="{other["id"]}" class="inactive">', html)
    assert inactive
    assert html.count('name="csrf_token"') == html.count("<form")  # every form carries it
    assert f'value="{csrf_of(html)}"' in html


async def test_the_delivery_log_is_newest_first_paged_and_in_vietnam_time(api: Any) -> None:
    created = await api.call(
        "POST",
        "/api/webhooks",
        as_user="admin",
        json={"url": RECEIVER, "events": ["*"]},
        expect=201,
    )
    wid = created["id"]
    delivered = await add_deliveries(api, wid, 55)
    given_up = await add_deliveries(
        api,
        wid,
        1,
        status=DeliveryStatus.GIVEN_UP,
        attempts=8,
        last_status=503,
        last_error=ERROR_TEXT,
    )
    headers = await cookie_for(api, "admin")

    status, html, _ = await get(api, f"/admin/webhooks/{wid}", headers)
    assert status == 200
    no_inline_script_or_style(html)
    shown = [int(x) for x in re.findall(r'<tr data-delivery="(\d+)">', html)]
    assert len(shown) == 50
    assert shown == sorted(shown, reverse=True)
    assert shown[0] == given_up[0]
    assert ERROR_TEXT in unescape(html)  # Vietnamese intact
    assert "?page=2" in html
    # Times in Hà Nội time, as the language writes them (01:30 UTC is 08:30 there).
    first = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    assert VI.format_datetime(first + timedelta(minutes=54)) in unescape(html)
    assert "08:" in VI.format_datetime(first)

    status, html, _ = await get(api, f"/admin/webhooks/{wid}?page=2", headers)
    assert status == 200
    rest = [int(x) for x in re.findall(r'<tr data-delivery="(\d+)">', html)]
    assert sorted(rest + shown) == sorted(delivered + given_up)

    status, html, _ = await get(api, f"/admin/webhooks/{wid}?status=given_up", headers)
    assert [int(x) for x in re.findall(r'<tr data-delivery="(\d+)">', html)] == given_up

    status, html, _ = await get(api, "/admin/webhooks/999999", headers)
    assert status == 404
    status, html, _ = await get(api, "/admin/webhooks/abc", headers)
    assert status == 404


async def test_page_scripts_change_webhooks_through_the_api_with_the_csrf_token(
    api: Any,
) -> None:
    """What admin_webhooks.js does: the session cookie and the page's CSRF token."""
    headers = await cookie_for(api, "admin")
    _, html, _ = await get(api, "/admin/webhooks", headers)
    token = csrf_of(html)
    same = {**headers, "Origin": str(api.client.make_url("")).rstrip("/")}

    refused = await api.client.post(
        "/api/webhooks", json={"url": RECEIVER, "events": ["*"]}, headers=same
    )
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "csrf_failed"

    response = await api.client.post(
        "/api/webhooks",
        json={"url": RECEIVER, "events": ["room.ended"]},
        headers={**same, "X-CSRF-Token": token},
    )
    assert response.status == 201
    created = await response.json()
    assert created["secret"]
    wid = created["id"]
    [delivery] = await add_deliveries(
        api, wid, 1, status=DeliveryStatus.GIVEN_UP, attempts=8, last_status=503
    )

    response = await api.client.patch(
        f"/api/webhooks/{wid}",
        json={"active": False, "events": ["room.ended", "room.started"]},
        headers={**same, "X-CSRF-Token": token},
    )
    assert response.status == 200
    _, html, _ = await get(api, f"/admin/webhooks/{wid}", headers)
    assert "room.ended, room.started" in html

    response = await api.client.post(
        f"/api/webhooks/{wid}/deliveries/{delivery}/redeliver",
        headers={**same, "X-CSRF-Token": token},
    )
    assert response.status == 200
    assert (await response.json())["status"] == "pending"

    response = await api.client.delete(
        f"/api/webhooks/{wid}", headers={**same, "X-CSRF-Token": token}
    )
    assert response.status == 204
    _, html, _ = await get(api, "/admin/webhooks", headers)
    assert f'data-webhook="{wid}"' not in html


# --- /admin/retention ---------------------------------------------------------------------


async def test_the_retention_page_shows_the_policy_the_preview_and_kept_recordings(
    api: Any,
) -> None:
    data_dir = api.client.app[CONFIG].data_dir
    mid = await add_meeting(api.database, title=TITLE)
    now = utcnow()
    old = await add_recording(
        api.database, data_dir, mid, number=1, started_at=now - timedelta(days=40)
    )
    kept = await add_recording(
        api.database, data_dir, mid, number=2, started_at=now - timedelta(days=400), keep=True
    )
    headers = await cookie_for(api, "admin")

    status, html, _ = await get(api, "/admin/retention", headers)
    assert status == 200
    no_inline_script_or_style(html)
    assert 'id="expired-count">0<' in html  # keep forever (the default, 0)
    assert f'<tr data-recording="{kept.id}">' in html
    assert f'<tr data-recording="{old.id}">' not in html
    assert TITLE in unescape(html)

    await api.call("PUT", "/api/retention", as_user="admin", json={"days": 30}, expect=200)
    status, html, _ = await get(api, "/admin/retention", headers)
    assert 'id="expired-count">1<' in html
    assert 'value="30"' in html
    history = re.search(r'<table class="history">(.*?)</table>', html, re.S)
    assert history
    assert "admin" in history.group(1)
    assert "30" in history.group(1)
