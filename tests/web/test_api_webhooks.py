"""The webhooks API: subscriptions, the delivery log, redelivery, roles, bad input.

Against the real app over loopback, on SQLite and PostgreSQL (the ``api``
fixture), with the app's own Webhooks service delivering to a real receiver.
Events enter the way the server's do: published on the app's bus.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from conference.config import Config
from conference.models import AuditEntry, WebhookDelivery, WebhookSubscription
from signaling.bus import BusEvent
from tests.recordings.webhook_receiver import Receiver, wait_until
from web.appkeys import BUS, CONFIG

NON_ADMINS = ["thuky", "vanthu", "vanhanh", "chutri"]
VIETNAMESE = "Họp khẩn – Ủy ban nhân dân tỉnh 🏛️"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    # Two attempts, one second apart: a failing delivery is given up in about a second.
    return Config(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="https://hoinghi.test",
        media="none",
        webhook_max_attempts=2,
        webhook_retry_seconds=1,
        webhook_timeout_seconds=2,
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.close()


# --- helpers ----------------------------------------------------------------------------


def error_of(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


async def counts(api: Any) -> tuple[int, int, int]:
    """Rows of subscriptions, deliveries and audit entries."""
    async with api.database.read() as session:
        out = []
        for model in (WebhookSubscription, WebhookDelivery, AuditEntry):
            out.append(int((await session.exec(select(func.count()).select_from(model))).one()))
    return out[0], out[1], out[2]


async def audit(api: Any, action: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.object_type == "webhook")
    if action is not None:
        query = query.where(AuditEntry.action == action)
    async with api.database.read() as session:
        return list((await session.exec(query.order_by(col(AuditEntry.id)))).all())


async def create(
    api: Any, receiver: Receiver, name: str, events: list[str] | None = None, **behaviour: Any
) -> dict[str, Any]:
    body: dict[str, Any] = await api.call(
        "POST",
        "/api/webhooks",
        as_user="admin",
        json={"url": receiver.url(name), "events": events or ["*"]},
        expect=201,
    )
    receiver.expect(name, body["secret"], **behaviour)
    return body


async def deliveries(api: Any, webhook_id: int, query: str = "") -> dict[str, Any]:
    body: dict[str, Any] = await api.call(
        "GET", f"/api/webhooks/{webhook_id}/deliveries{query}", as_user="admin", expect=200
    )
    return body


def publish(api: Any, name: str, data: dict[str, Any]) -> None:
    api.client.app[BUS].publish(BusEvent(name, data))


# --- the life of a subscription ---------------------------------------------------------


async def test_admin_creates_lists_gets_updates_and_deletes_a_webhook(
    api: Any, receiver: Receiver
) -> None:
    created = await api.call(
        "POST",
        "/api/webhooks",
        as_user="admin",
        json={"url": receiver.url("a"), "events": ["room.ended", "recording.finished"]},
        expect=201,
    )
    secret = created["secret"]
    assert set(created) == {"id", "url", "events", "active", "created_at", "secret"}
    assert created["url"] == receiver.url("a")
    assert created["events"] == ["room.ended", "recording.finished"]
    assert created["active"] is True
    assert created["created_at"].endswith("+07:00")
    assert len(secret) >= 43  # secrets.token_urlsafe(32)
    hook_id = created["id"]
    async with api.database.read() as session:
        row = await session.get(WebhookSubscription, hook_id)
    assert row is not None
    assert row.secret == secret

    # The secret never shows again.
    listed = await api.call("GET", "/api/webhooks", as_user="admin", expect=200)
    one = await api.call("GET", f"/api/webhooks/{hook_id}", as_user="admin", expect=200)
    assert listed["items"] == [one]
    assert set(one) == {"id", "url", "events", "active", "created_at"}
    for body in (listed, one):
        assert secret not in json.dumps(body)

    changed = await api.call(
        "PATCH",
        f"/api/webhooks/{hook_id}",
        as_user="admin",
        json={"events": ["*"], "active": False, "url": receiver.url("b")},
        expect=200,
    )
    assert (changed["events"], changed["active"], changed["url"]) == (
        ["*"],
        False,
        receiver.url("b"),
    )
    assert await api.call("GET", f"/api/webhooks/{hook_id}", as_user="admin") == changed
    partial = await api.call(
        "PATCH", f"/api/webhooks/{hook_id}", as_user="admin", json={"active": True}, expect=200
    )
    assert (partial["events"], partial["active"]) == (["*"], True)

    await api.call("DELETE", f"/api/webhooks/{hook_id}", as_user="admin", expect=204)
    gone = await api.call("GET", f"/api/webhooks/{hook_id}", as_user="admin", expect=404)
    assert error_of(gone)["code"] == "unknown_webhook"
    assert (await api.call("GET", "/api/webhooks", as_user="admin"))["items"] == []

    entries = await audit(api)
    assert [e.action for e in entries] == [
        "webhook.create",
        "webhook.update",
        "webhook.update",
        "webhook.delete",
    ]
    assert {e.actor for e in entries} == {"admin"}
    assert {e.object_id for e in entries} == {str(hook_id)}
    assert entries[0].detail["url"] == receiver.url("a")
    assert entries[1].detail["changes"] == {
        "events": ["*"],
        "active": False,
        "url": receiver.url("b"),
    }
    assert entries[2].detail["changes"] == {"active": True}
    assert all(secret not in json.dumps(e.detail) for e in entries)


async def test_deleting_a_webhook_deletes_its_delivery_log(api: Any, receiver: Receiver) -> None:
    hook = await create(api, receiver, "log", ["room.started"])
    publish(api, "room.started", {"meeting_id": 1})

    async def delivered() -> bool:
        return (await deliveries(api, hook["id"], "?status=delivered"))["total"] == 1

    await wait_until(delivered, what="one delivery")
    subs, rows, audits = await counts(api)
    assert (subs, rows) == (1, 1)
    await api.call("DELETE", f"/api/webhooks/{hook['id']}", as_user="admin", expect=204)
    assert await counts(api) == (0, 0, audits + 1)
    [deleted] = await audit(api, "webhook.delete")
    assert deleted.detail["deliveries_deleted"] == 1


# --- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize("username", NON_ADMINS)
async def test_other_roles_are_refused_everywhere(
    api: Any, receiver: Receiver, username: str
) -> None:
    hook = await create(api, receiver, "x", ["room.started"])
    publish(api, "room.started", {"meeting_id": 1})

    async def written() -> bool:
        return (await counts(api))[1] == 1

    await wait_until(written, what="a delivery row")
    delivery_id = (await deliveries(api, hook["id"]))["items"][0]["id"]
    before = await counts(api)
    base = f"/api/webhooks/{hook['id']}"
    calls: list[tuple[str, str, Any]] = [
        ("POST", "/api/webhooks", {"url": receiver.url("y"), "events": ["*"]}),
        ("GET", "/api/webhooks", None),
        ("GET", base, None),
        ("PATCH", base, {"active": False}),
        ("DELETE", base, None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/{delivery_id}/redeliver", None),
    ]
    for method, path, body in calls:
        answer = await api.call(method, path, as_user=username, json=body, expect=403)
        assert error_of(answer)["code"] == "forbidden", (method, path)
        answer = await api.call(method, path, as_user=None, json=body, expect=401)
        assert error_of(answer)["code"] == "unauthenticated", (method, path)
    assert await counts(api) == before
    assert (await api.call("GET", base, as_user="admin", expect=200))["active"] is True


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"url": "ftp://example.org/hook", "events": ["*"]}, "invalid_field", "url"),
        ({"url": "javascript:alert(1)", "events": ["*"]}, "invalid_field", "url"),
        ({"url": "file:///etc/passwd", "events": ["*"]}, "invalid_field", "url"),
        ({"url": "hook.example.org/path", "events": ["*"]}, "invalid_field", "url"),
        ({"url": "http://", "events": ["*"]}, "invalid_field", "url"),
        ({"url": "https://user:pw@example.org/", "events": ["*"]}, "invalid_field", "url"),
        ({"url": "https://example.org/a b", "events": ["*"]}, "invalid_field", "url"),
        ({"url": "https://example.org/" + "a" * 2000, "events": ["*"]}, "invalid_field", "url"),
        ({"url": "", "events": ["*"]}, "invalid_field", "url"),
        ({"events": ["*"]}, "missing_field", "url"),
        ({"url": "https://example.org/", "events": ["room.exploded"]}, "invalid_field", "events"),
        ({"url": "https://example.org/", "events": ["recording.state"]}, "invalid_field", "events"),
        ({"url": "https://example.org/", "events": []}, "invalid_field", "events"),
        ({"url": "https://example.org/", "events": "room.ended"}, "invalid_field", "events"),
        ({"url": "https://example.org/"}, "missing_field", "events"),
        # The secret is made by the server, never chosen by the caller.
        ({"url": "https://example.org/", "events": ["*"], "secret": "abc"}, "unknown_field", None),
    ],
)
async def test_a_bad_subscription_is_refused_and_nothing_is_written(
    api: Any, body: dict[str, Any], code: str, field: str | None
) -> None:
    before = await counts(api)
    answer = await api.call("POST", "/api/webhooks", as_user="admin", json=body, expect=422)
    error = error_of(answer)
    assert error["code"] == code
    if field is not None:
        assert error["field"] == field
    assert await counts(api) == before


async def test_an_oversized_or_non_json_body_is_refused_and_nothing_is_written(
    api: Any,
) -> None:
    before = await counts(api)
    limit = api.client.app[CONFIG].max_body_bytes
    huge = {"url": "https://example.org/" + "a" * 100, "events": ["*"] * (limit // 4)}
    answer = await api.call("POST", "/api/webhooks", as_user="admin", json=huge, expect=413)
    assert error_of(answer)["code"] == "body_too_large"
    answer = await api.call(
        "POST",
        "/api/webhooks",
        as_user="admin",
        data=b"url=https://example.org/",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        expect=415,
    )
    assert error_of(answer)["code"] == "unsupported_media_type"
    answer = await api.call(
        "POST",
        "/api/webhooks",
        as_user="admin",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        expect=400,
    )
    assert error_of(answer)["code"] == "invalid_json"
    assert await counts(api) == before


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"url": None}, "invalid_field", "url"),
        ({"events": None}, "invalid_field", "events"),
        ({"active": None}, "invalid_field", "active"),
        ({"url": "gopher://example.org/"}, "invalid_field", "url"),
        ({"events": ["*", "meeting.deleted"]}, "invalid_field", "events"),
        ({"secret": "mine"}, "unknown_field", None),
    ],
)
async def test_a_bad_update_changes_nothing(
    api: Any, receiver: Receiver, body: dict[str, Any], code: str, field: str | None
) -> None:
    hook = await create(api, receiver, "z", ["room.ended"])
    before = await counts(api)
    answer = await api.call(
        "PATCH", f"/api/webhooks/{hook['id']}", as_user="admin", json=body, expect=422
    )
    error = error_of(answer)
    assert error["code"] == code
    if field is not None:
        assert error["field"] == field
    assert await counts(api) == before
    now = await api.call("GET", f"/api/webhooks/{hook['id']}", as_user="admin")
    assert now == {k: v for k, v in hook.items() if k != "secret"}


@pytest.mark.parametrize("hook_id", ["999999", "abc", "-1", "1e3"])
async def test_unknown_webhooks_are_404(api: Any, hook_id: str) -> None:
    base = f"/api/webhooks/{hook_id}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"active": False}),
        ("DELETE", base, None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/1/redeliver", None),
    ]:
        answer = await api.call(method, path, as_user="admin", json=body, expect=404)
        assert error_of(answer)["code"] == "unknown_webhook", (method, path)


# --- the delivery log and redelivery ----------------------------------------------------


async def test_the_log_shows_attempts_and_redeliver_sends_again_with_the_same_key(
    api: Any, receiver: Receiver
) -> None:
    hook = await create(api, receiver, "flaky", ["room.ended"], then=404)
    data = {"meeting_id": 12, "reason": VIETNAMESE}
    publish(api, "room.ended", data)

    async def given_up() -> bool:
        page = await deliveries(api, hook["id"])
        return page["total"] == 1 and page["items"][0]["status"] == "given_up"

    await wait_until(given_up, what="two failed attempts")
    [item] = (await deliveries(api, hook["id"]))["items"]
    assert item["event"] == "room.ended"
    assert item["data"] == data
    assert (item["attempts"], item["last_status"]) == (2, 404)
    assert "404" in item["last_error"]
    assert item["next_attempt_at"] is None
    assert item["delivered_at"] is None
    assert item["webhook_id"] == hook["id"]
    assert len(receiver.at("flaky")) == 2

    receiver.set("flaky", then=200)
    before = await counts(api)
    path = f"/api/webhooks/{hook['id']}/deliveries/{item['id']}/redeliver"
    again = await api.call("POST", path, as_user="admin", expect=200)
    assert (again["id"], again["status"], again["attempts"]) == (item["id"], "pending", 2)
    assert again["next_attempt_at"] is not None

    async def delivered() -> bool:
        page = await deliveries(api, hook["id"], "?status=delivered")
        return page["total"] == 1

    await wait_until(delivered, what="the redelivery")
    [done] = (await deliveries(api, hook["id"]))["items"]
    assert (done["attempts"], done["last_status"], done["last_error"]) == (3, 200, "")
    assert done["delivered_at"] is not None
    got = receiver.at("flaky")
    assert len(got) == 3
    assert {r.key for r in got} == {item["event_id"]}
    assert got[-1].json["data"] == data
    assert receiver.bad_signatures == []

    [entry] = await audit(api, "webhook.redeliver")
    assert entry.actor == "admin"
    assert entry.object_id == str(hook["id"])
    assert entry.detail["delivery_id"] == item["id"]
    assert entry.detail["previous_status"] == "given_up"
    subs, rows, audits = await counts(api)
    assert (subs, rows, audits) == (before[0], before[1], before[2] + 1)


async def test_redeliver_refuses_a_delivery_of_another_webhook(
    api: Any, receiver: Receiver
) -> None:
    first = await create(api, receiver, "one", ["room.started"])
    second = await create(api, receiver, "two", ["room.ended"])
    publish(api, "room.started", {"meeting_id": 1})

    async def written() -> bool:
        return (await deliveries(api, first["id"]))["total"] == 1

    await wait_until(written, what="a delivery")
    delivery_id = (await deliveries(api, first["id"]))["items"][0]["id"]
    before = await counts(api)
    for path in (
        f"/api/webhooks/{second['id']}/deliveries/{delivery_id}/redeliver",
        f"/api/webhooks/{first['id']}/deliveries/999999/redeliver",
        f"/api/webhooks/{first['id']}/deliveries/abc/redeliver",
    ):
        answer = await api.call("POST", path, as_user="admin", expect=404)
        assert error_of(answer)["code"] == "unknown_delivery", path
    assert await counts(api) == before


async def test_the_log_is_newest_first_paginated_and_filtered_by_status(
    api: Any, receiver: Receiver
) -> None:
    # Deliveries to one receiver go one at a time, in order: three succeed, the last fails.
    hook = await create(api, receiver, "mixed", ["*"], script=[200, 200, 200], then=500)
    for n in range(4):
        publish(api, "participant.joined", {"meeting_id": 3, "n": n})

    async def settled() -> bool:
        page = await deliveries(api, hook["id"], "?status=pending")
        return page["total"] == 0 and (await deliveries(api, hook["id"]))["total"] == 4

    await wait_until(settled, what="four settled deliveries")
    everything = await deliveries(api, hook["id"])
    ids = [d["id"] for d in everything["items"]]
    assert ids == sorted(ids, reverse=True)
    assert [d["data"]["n"] for d in everything["items"]] == [3, 2, 1, 0]

    first = await deliveries(api, hook["id"], "?limit=2")
    rest = await deliveries(api, hook["id"], "?limit=2&offset=2")
    assert (first["total"], first["limit"], first["offset"]) == (4, 2, 0)
    assert [d["id"] for d in first["items"] + rest["items"]] == ids
    assert (await deliveries(api, hook["id"], "?offset=4"))["items"] == []

    delivered = await deliveries(api, hook["id"], "?status=delivered")
    assert [d["data"]["n"] for d in delivered["items"]] == [2, 1, 0]
    assert delivered["total"] == 3
    failed = await deliveries(api, hook["id"], "?status=given_up")
    assert [(d["data"]["n"], d["last_status"]) for d in failed["items"]] == [(3, 500)]
    both = await deliveries(api, hook["id"], "?status=given_up,delivered")
    assert both["total"] == 4

    for query in ("?status=lost", "?limit=0", "?limit=1001", "?offset=-1", "?limit=x"):
        answer = await api.call(
            "GET", f"/api/webhooks/{hook['id']}/deliveries{query}", as_user="admin", expect=422
        )
        assert error_of(answer)["code"] == "invalid_field", query


async def test_an_inactive_webhook_gets_no_deliveries(api: Any, receiver: Receiver) -> None:
    paused = await create(api, receiver, "paused", ["room.started"])
    await api.call(
        "PATCH", f"/api/webhooks/{paused['id']}", as_user="admin", json={"active": False}
    )
    witness = await create(api, receiver, "witness", ["room.started"])
    publish(api, "room.started", {"meeting_id": 4})
    await wait_until(lambda: len(receiver.at("witness")) == 1, what="the witness delivery")
    assert (await deliveries(api, witness["id"]))["total"] == 1
    assert (await deliveries(api, paused["id"]))["total"] == 0
    assert receiver.at("paused") == []


async def test_the_webhook_routes_are_documented_for_admins(api: Any) -> None:
    document = await api.call("GET", "/api/openapi.json", as_user=None, expect=200)
    paths = document["paths"]
    expected = {
        "/api/webhooks": {"get", "post"},
        "/api/webhooks/{webhook_id}": {"get", "patch", "delete"},
        "/api/webhooks/{webhook_id}/deliveries": {"get"},
        "/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": {"post"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
        for op in paths[path].values():
            assert op["description"] == "Roles: admin", path
            assert "403" in op["responses"], path
    schemas = document["components"]["schemas"]
    assert "secret" in schemas["WebhookCreated"]["properties"]
    assert "secret" not in schemas["WebhookPublic"]["properties"]


# --- the meetings' notices ------------------------------------------------------------


async def test_a_reschedule_and_a_cancel_reach_a_subscriber_signed(
    api: Any, receiver: Receiver
) -> None:
    from datetime import UTC, datetime, timedelta

    hook = await create(api, receiver, "notices", ["meeting.rescheduled", "meeting.cancelled"])
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    created = await api.call(
        "POST",
        "/api/meetings",
        as_user="thuky",
        json={
            "title": "Họp giao ban — Sở Nội vụ",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(),
            "chair_unit": "QB",
            "invited_units": ["QB-SNV"],
        },
        expect=201,
    )
    mid = created["meeting"]["id"]
    moved = start + timedelta(days=1)
    await api.call(
        "POST",
        f"/api/meetings/{mid}/reschedule",
        as_user="thuky",
        json={
            "starts_at": moved.isoformat(),
            "ends_at": (moved + timedelta(hours=1)).isoformat(),
            "reason": "Lãnh đạo đi công tác",
        },
        expect=200,
    )
    await api.call(
        "POST", f"/api/meetings/{mid}/cancel", as_user="thuky", json={"reason": "Hoãn"}, expect=200
    )
    await wait_until(lambda: len(receiver.at("notices")) >= 2, what="two notices")
    got = receiver.at("notices")
    assert all(r.signature_ok and r.timestamp_ok for r in got)
    bodies = [r.json for r in got]
    assert [b["event"] for b in bodies] == ["meeting.rescheduled", "meeting.cancelled"]
    rescheduled, cancelled = (b["data"] for b in bodies)
    assert rescheduled["reason"] == "Lãnh đạo đi công tác"
    assert rescheduled["units"] == ["QB", "QB-SNV"]
    assert datetime.fromisoformat(rescheduled["previous_starts_at"]) == start
    assert datetime.fromisoformat(rescheduled["starts_at"]) == moved
    assert cancelled == {**cancelled, "meeting_id": mid, "reason": "Hoãn"}
    assert (await deliveries(api, hook["id"], "?status=delivered"))["total"] == 2
