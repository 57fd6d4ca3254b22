"""The meetings and invitations API over a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlmodel import func, select

from conference.models import AuditEntry, Invitation, Meeting

START = (datetime.now(UTC) + timedelta(days=2)).replace(hour=1, minute=0, second=0, microsecond=0)
TITLE = "Hội nghị trực tuyến tổng kết năm 2026 — Sở Thông tin và Truyền thông 📡"


def body(hours_from: float = 0, hours: float = 2, **kw):
    start = START + timedelta(hours=hours_from)
    data = {
        "title": TITLE,
        "agenda": ["Báo cáo tình hình", "Thảo luận\nvà kết luận"],
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
        "chair_unit": "QB",
        "invited_units": ["QB-STTTT", "QB-SNV", "QB-BOTRACH-TANTRACH"],
        "recording": True,
    }
    data.update(kw)
    return data


async def count(api, model) -> int:
    async with api.database.read() as s:
        return (await s.exec(select(func.count()).select_from(model))).one()


async def test_schedule_meeting_round_trips_vietnamese_and_local_time(api):
    created = await api.call("POST", "/api/meetings", json=body(), expect=201)
    meeting = created["meeting"]
    assert created["warnings"] == []
    assert meeting["title"] == TITLE
    assert meeting["agenda"] == ["Báo cáo tình hình", "Thảo luận\nvà kết luận"]
    assert meeting["starts_at"].endswith("+07:00")
    assert datetime.fromisoformat(meeting["starts_at"]) == START
    assert meeting["invited_count"] == 4
    assert meeting["status"] == "scheduled"
    got = await api.call("GET", f"/api/meetings/{meeting['id']}", as_user="vanthu", expect=200)
    assert got == meeting


@pytest.mark.parametrize("user", ["vanthu", "vanhanh", "chutri"])
async def test_only_secretariat_and_admin_schedule(api, user):
    err = await api.call("POST", "/api/meetings", as_user=user, json=body(), expect=403)
    assert err["error"]["code"] == "forbidden"
    await api.call("POST", "/api/meetings", as_user="admin", json=body(), expect=201)


async def test_unauthenticated_requests_are_refused(api):
    err = await api.call("GET", "/api/meetings", as_user=None, expect=401)
    assert err["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"ends_at": START.isoformat()}, 422, "invalid_time_range", "ends_at"),
        ({"starts_at": "2026-12-01T08:00:00"}, 422, "timezone_required", "starts_at"),
        ({"chair_unit": "KHONG-CO"}, 422, "unknown_unit", "chair_unit"),
        ({"invited_units": ["QB-SNV", "KHONG-CO"]}, 422, "unknown_unit", "invited_units"),
        ({"title": "Họp\u0000"}, 422, "invalid_field", "title"),
        ({"title": ""}, 422, "invalid_field", "title"),
        ({"title": 12}, 422, "invalid_field", "title"),
        ({"recording": "maybe"}, 422, "invalid_field", "recording"),
        ({"priority": "cao"}, 422, "unknown_field", "priority"),
        ({"kind": "secret"}, 422, "invalid_field", "kind"),
    ],
)
async def test_bad_meeting_input_is_refused_and_nothing_written(api, change, status, code, field):
    audit_before = await count(api, AuditEntry)
    err = await api.call("POST", "/api/meetings", json=body(**change), expect=status)
    assert err["error"]["code"] == code
    assert err["error"]["field"] == field
    assert await count(api, Meeting) == 0
    assert await count(api, Invitation) == 0
    assert await count(api, AuditEntry) == audit_before


async def test_missing_field_is_named(api):
    data = body()
    del data["chair_unit"]
    err = await api.call("POST", "/api/meetings", json=data, expect=422)
    assert err["error"] == err["error"] | {"code": "missing_field", "field": "chair_unit"}


async def test_raw_bad_bodies(api):
    headers = api.auth("thuky") | {"Content-Type": "application/json"}
    for raw, status, code in [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"{" + b'"title": "' + b"a" * (1024 * 1024) + b'"}', 413, "body_too_large"),
    ]:
        response = await api.client.post("/api/meetings", data=raw, headers=headers)
        assert response.status == status, raw[:20]
        assert (await response.json())["error"]["code"] == code
    response = await api.client.post(
        "/api/meetings", data=b"title=x", headers=api.auth("thuky") | {"Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert await count(api, Meeting) == 0


async def test_chair_conflict_and_double_booking_over_http(api):
    first = await api.call("POST", "/api/meetings", json=body(), expect=201)
    err = await api.call("POST", "/api/meetings", json=body(hours_from=1), expect=409)
    assert err["error"]["code"] == "chair_conflict"
    second = await api.call(
        "POST", "/api/meetings", json=body(hours_from=1, chair_unit="QB-SKHDT"), expect=201
    )
    warned = {(w["unit"], w["meeting_id"]) for w in second["warnings"]}
    assert warned == {
        (u, first["meeting"]["id"]) for u in ["QB-STTTT", "QB-SNV", "QB-BOTRACH-TANTRACH"]
    }


async def test_list_filters_by_range_unit_and_status(api):
    ids = []
    for day in range(4):
        created = await api.call(
            "POST",
            "/api/meetings",
            json=body(hours_from=24 * day, invited_units=["QB-SNV"] if day % 2 else ["QB-STP"]),
            expect=201,
        )
        ids.append(created["meeting"]["id"])
    await api.call("POST", f"/api/meetings/{ids[3]}/cancel", json={"reason": "Hoãn"}, expect=200)

    page = await api.call("GET", "/api/meetings", as_user="vanthu", expect=200)
    assert [m["id"] for m in page["items"]] == ids
    assert page["total"] == 4

    window = {
        "from": (START + timedelta(hours=23)).isoformat(),
        "to": (START + timedelta(hours=49)).isoformat(),
    }
    page = await api.call("GET", "/api/meetings", params=window, expect=200)
    assert [m["id"] for m in page["items"]] == [ids[1], ids[2]]

    page = await api.call("GET", "/api/meetings", params={"unit": "QB-SNV"}, expect=200)
    assert [m["id"] for m in page["items"]] == [ids[1], ids[3]]

    page = await api.call("GET", "/api/meetings", params={"status": "cancelled"}, expect=200)
    assert [m["id"] for m in page["items"]] == [ids[3]]

    page = await api.call("GET", "/api/meetings", params={"limit": 2, "offset": 1}, expect=200)
    assert [m["id"] for m in page["items"]] == ids[1:3]
    assert page["total"] == 4


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"from": "2026-12-01T00:00:00"}, "from", "timezone_required"),
        ({"to": "tomorrow"}, "to", "invalid_field"),
        ({"status": "live,sleeping"}, "status", "invalid_field"),
        ({"limit": "0"}, "limit", "invalid_field"),
        ({"limit": "abc"}, "limit", "invalid_field"),
    ],
)
async def test_bad_list_parameters(api, params, field, code):
    err = await api.call("GET", "/api/meetings", params=params, expect=422)
    assert (err["error"]["field"], err["error"]["code"]) == (field, code)


async def test_operator_sees_only_its_units_meetings(api):
    mine = await api.call("POST", "/api/meetings", json=body(invited_units=["QB-SNV"]), expect=201)
    other = await api.call(
        "POST", "/api/meetings", json=body(hours_from=5, invited_units=["QB-STP"]), expect=201
    )
    page = await api.call("GET", "/api/meetings", as_user="vanhanh", expect=200)  # QB-SNV
    assert [m["id"] for m in page["items"]] == [mine["meeting"]["id"]]
    await api.call("GET", f"/api/meetings/{other['meeting']['id']}", as_user="vanhanh", expect=404)
    err = await api.call(
        "GET", "/api/meetings", as_user="vanhanh", params={"unit": "QB-STP"}, expect=403
    )
    assert err["error"]["code"] == "forbidden"


async def test_update_reschedule_and_cancel(api):
    created = await api.call("POST", "/api/meetings", json=body(), expect=201)
    mid = created["meeting"]["id"]
    updated = await api.call(
        "PATCH",
        f"/api/meetings/{mid}",
        json={"title": "Họp đã đổi tên", "kind": "extraordinary"},
        expect=200,
    )
    assert updated["meeting"]["title"] == "Họp đã đổi tên"
    assert updated["meeting"]["kind"] == "extraordinary"
    new_start = START + timedelta(days=1)
    moved = await api.call(
        "POST",
        f"/api/meetings/{mid}/reschedule",
        json={
            "starts_at": new_start.isoformat(),
            "ends_at": (new_start + timedelta(hours=1)).isoformat(),
        },
        expect=200,
    )
    assert datetime.fromisoformat(moved["meeting"]["starts_at"]) == new_start
    assert moved["meeting"]["revision"] == 2
    err = await api.call("PATCH", f"/api/meetings/{mid}", json={"title": None}, expect=422)
    assert err["error"]["field"] == "title"
    cancelled = await api.call("POST", f"/api/meetings/{mid}/cancel", json={}, expect=200)
    assert cancelled["status"] == "cancelled"
    again = await api.call("POST", f"/api/meetings/{mid}/cancel", json={}, expect=200)
    assert again == cancelled  # idempotent: no new revision, no second audit entry
    err = await api.call("PATCH", f"/api/meetings/{mid}", json={"title": "x"}, expect=409)
    assert err["error"]["code"] == "meeting_not_editable"
    await api.call("GET", "/api/meetings/999999", expect=404)
    async with api.database.read() as s:
        actions = (
            await s.exec(
                select(AuditEntry.action)
                .where(AuditEntry.object_id == str(mid))
                .order_by(AuditEntry.id)
            )
        ).all()
    assert actions == ["meeting.create", "meeting.update", "meeting.reschedule", "meeting.cancel"]


async def test_invitations_links_revoke_reissue(api):
    # Starts soon, so the join links are inside their window (the lobby is open).
    soon = datetime.now(UTC) + timedelta(minutes=10)
    created = await api.call(
        "POST",
        "/api/meetings",
        json=body(starts_at=soon.isoformat(), ends_at=(soon + timedelta(hours=1)).isoformat()),
        expect=201,
    )
    mid = created["meeting"]["id"]
    listed = await api.call("GET", f"/api/meetings/{mid}/invitations", expect=200)
    by_unit = {i["unit"]: i for i in listed["invitations"]}
    assert by_unit["QB"]["role"] == "chair"
    assert by_unit["QB-BOTRACH-TANTRACH"]["unit_name"] == "Xã Tân Trạch"
    assert all(i["join_url"].startswith("https://hoinghi.test/join/") for i in by_unit.values())

    clerk_view = await api.call(
        "GET", f"/api/meetings/{mid}/invitations", as_user="vanthu", expect=200
    )
    assert all(i["join_url"] is None for i in clerk_view["invitations"])
    await api.call("GET", f"/api/meetings/{mid}/invitations", as_user="vanhanh", expect=403)

    added = await api.call(
        "POST",
        f"/api/meetings/{mid}/invitations",
        json={"units": ["QB-STP"], "role": "observer"},
        expect=201,
    )
    assert added["invitations"][0]["role"] == "observer"
    err = await api.call(
        "POST",
        f"/api/meetings/{mid}/invitations",
        json={"units": ["QB-STP"], "role": "chair"},
        expect=409,
    )
    assert err["error"]["code"] == "chair_by_meeting"

    old_link = by_unit["QB-SNV"]["join_url"]
    page = await api.client.get(old_link.replace("https://hoinghi.test", ""))
    assert page.status == 200
    assert TITLE in await page.text()

    revoked = await api.call("POST", f"/api/meetings/{mid}/invitations/QB-SNV/revoke", expect=200)
    assert revoked["revoked"] is True
    page = await api.client.get(old_link.replace("https://hoinghi.test", ""))
    assert page.status == 403
    assert "token_revoked" in await page.text()

    fresh = await api.call("POST", f"/api/meetings/{mid}/invitations/QB-SNV/reissue", expect=200)
    assert fresh["join_url"] != old_link
    page = await api.client.get(fresh["join_url"].replace("https://hoinghi.test", ""))
    assert page.status == 200
    await api.call("POST", f"/api/meetings/{mid}/invitations/QB-SKHDT/revoke", expect=404)


async def test_calendar_file_parses_back_with_the_units_join_link(api):
    created = await api.call("POST", "/api/meetings", json=body(), expect=201)
    mid = created["meeting"]["id"]
    links = await api.call("GET", f"/api/meetings/{mid}/invitations", expect=200)
    link = next(i["join_url"] for i in links["invitations"] if i["unit"] == "QB-SNV")

    response = await api.client.get(
        f"/api/meetings/{mid}/invitations/QB-SNV/calendar.ics", headers=api.auth("vanhanh")
    )
    assert response.status == 200
    assert response.content_type == "text/calendar"
    assert "attachment" in response.headers["Content-Disposition"]
    event = Calendar.from_ical(await response.read()).walk("VEVENT")[0]
    assert str(event["summary"]) == TITLE
    assert event.decoded("dtstart") == START
    assert event.decoded("dtend") == START + timedelta(hours=2)
    assert str(event["url"]) == link
    assert link in str(event["description"])
    assert "Sở Nội vụ" in str(event["description"])
    assert int(event["sequence"]) == 0
    assert str(event["uid"]).startswith(f"meeting-{mid}@")

    # Another unit's operator may not fetch it; the secretariat may.
    response = await api.client.get(
        f"/api/meetings/{mid}/invitations/QB-STTTT/calendar.ics", headers=api.auth("vanhanh")
    )
    assert response.status == 404
    response = await api.client.get(
        f"/api/meetings/{mid}/invitations/QB-STTTT/calendar.ics", headers=api.auth("thuky")
    )
    assert response.status == 200

    await api.call("POST", f"/api/meetings/{mid}/cancel", json={}, expect=200)
    response = await api.client.get(
        f"/api/meetings/{mid}/invitations/QB-SNV/calendar.ics", headers=api.auth("thuky")
    )
    event = Calendar.from_ical(await response.read()).walk("VEVENT")[0]
    assert str(event["status"]) == "CANCELLED"
    assert int(event["sequence"]) == 1


async def test_cancel_and_reschedule_tell_the_invited_units_on_the_bus(api):
    """The events webhooks send: committed changes only, with the units concerned, the
    times before a reschedule, and the Office's reason byte-exact."""
    import asyncio

    from web.appkeys import BUS

    events = []
    ready = asyncio.Event()

    async def listen():
        stream = api.client.app[BUS].subscribe()
        first = asyncio.ensure_future(stream.__anext__())
        ready.set()
        events.append(await first)
        async for event in stream:
            events.append(event)

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0)
    await ready.wait()
    created = await api.call("POST", "/api/meetings", json=body(), expect=201)
    mid = created["meeting"]["id"]
    # An edit that keeps the times, and a refused reschedule, say nothing.
    await api.call("PATCH", f"/api/meetings/{mid}", json={"title": "Họp mới"}, expect=200)
    await api.call(
        "POST",
        f"/api/meetings/{mid}/reschedule",
        json={"starts_at": START.isoformat(), "ends_at": (START - timedelta(hours=1)).isoformat()},
        expect=422,
    )
    new_start = START + timedelta(days=1)
    reason = "Trùng lịch làm việc với Bộ Nội vụ"
    await api.call(
        "POST",
        f"/api/meetings/{mid}/reschedule",
        json={
            "starts_at": new_start.isoformat(),
            "ends_at": (new_start + timedelta(hours=1)).isoformat(),
            "reason": reason,
        },
        expect=200,
    )
    await api.call("POST", f"/api/meetings/{mid}/cancel", json={"reason": "Hoãn"}, expect=200)
    await api.call("POST", f"/api/meetings/{mid}/cancel", json={"reason": "lần 2"}, expect=200)
    for _ in range(100):
        if len(events) >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # a third event, were one wrongly published, would be in
    listener.cancel()
    names = [e.name for e in events if e.name.startswith("meeting.")]
    assert names == ["meeting.rescheduled", "meeting.cancelled"]
    moved, cancelled = [e.data for e in events if e.name.startswith("meeting.")]
    assert moved["meeting_id"] == mid
    assert moved["title"] == "Họp mới"
    assert moved["reason"] == reason
    assert datetime.fromisoformat(moved["previous_starts_at"]) == START
    assert datetime.fromisoformat(moved["starts_at"]) == new_start
    assert moved["starts_at"].endswith("+07:00")
    assert moved["units"] == sorted(["QB", "QB-STTTT", "QB-SNV", "QB-BOTRACH-TANTRACH"])
    assert cancelled["reason"] == "Hoãn"
    assert cancelled["units"] == moved["units"]
    async with api.database.read() as s:
        entry = (
            await s.exec(
                select(AuditEntry).where(
                    AuditEntry.object_id == str(mid), AuditEntry.action == "meeting.reschedule"
                )
            )
        ).one()
    assert entry.detail["reason"] == reason
    assert datetime.fromisoformat(entry.detail["from_starts_at"]) == START


async def test_the_list_searches_titles_ignoring_case_and_tone_marks(api):
    titles = [
        "Họp giao ban tháng 12 — Sở Nội vụ",
        "HỌP GIAO BAN ĐỘT XUẤT",
        "Hội nghị tổng kết năm",
    ]
    ids = []
    for n, title in enumerate(titles):
        created = await api.call(
            "POST", "/api/meetings", json=body(hours_from=3 * n, title=title), expect=201
        )
        ids.append(created["meeting"]["id"])
    for q in ("hop giao ban", "Họp Giao Ban", "GIAO"):
        page = await api.call("GET", "/api/meetings", params={"q": q}, expect=200)
        assert [m["id"] for m in page["items"]] == ids[:2], q
        assert page["total"] == 2
    page = await api.call("GET", "/api/meetings", params={"q": "dot xuat"}, expect=200)
    assert [m["title"] for m in page["items"]] == [titles[1]]
    # Paging works on the matches, and the other filters still apply.
    page = await api.call("GET", "/api/meetings", params={"q": "giao", "limit": 1, "offset": 1})
    assert [m["id"] for m in page["items"]] == [ids[1]]
    assert page["total"] == 2
    page = await api.call("GET", "/api/meetings", params={"q": "giao", "status": "cancelled"})
    assert page["items"] == []
    assert page["total"] == 0
    page = await api.call("GET", "/api/meetings", params={"q": "không có cuộc họp nào"})
    assert page["total"] == 0
    err = await api.call("GET", "/api/meetings", params={"q": "x" * 301}, expect=422)
    assert err["error"]["field"] == "q"
