"""Webhook delivery against a real receiver over loopback, on SQLite and PostgreSQL.

The receiver (``webhook_receiver.py``) checks every signature itself with
``hmac``; retries use 0.05 s so the schedule runs in well under a second.
Results are decided by polling with deadlines, never by a fixed sleep.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from conference.actors import SYSTEM
from conference.db import Database
from conference.models import DeliveryStatus, WebhookDelivery
from conference.timezone import utcnow
from recordings.webhooks import (
    MAX_BACKOFF_SECONDS,
    WebhookCreate,
    Webhooks,
    WebhookSettings,
    create_subscription,
    retry_delay,
    sign,
)
from signaling.bus import BusEvent, InProcessBus
from tests.recordings.webhook_receiver import Receiver, wait_until

FAST = WebhookSettings(max_attempts=4, retry_seconds=0.05, timeout_seconds=2.0)

# The same words in composed (NFC) and decomposed (NFD) form, and emoji with
# ZWJ sequences and a variation selector: all must arrive exactly as sent.
NFC = unicodedata.normalize("NFC", "Ủy ban nhân dân tỉnh Quảng Bình – họp trực tuyến")
NFD = unicodedata.normalize("NFD", NFC)
EMOJI = "🎥 👨‍👩‍👧 🏞️ ✅"


# --- fixtures and helpers -------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.close()


@pytest.fixture
async def make_service(database: Database) -> AsyncIterator[Callable[..., Webhooks]]:
    made: list[Webhooks] = []

    def make(**overrides: Any) -> Webhooks:
        service = Webhooks(database, dataclasses.replace(FAST, **overrides))
        made.append(service)
        return service

    yield make
    for service in made:
        await service.close()


async def subscribe(
    db: Database,
    receiver: Receiver,
    name: str,
    events: tuple[str, ...] = ("*",),
    *,
    active: bool = True,
    url: str | None = None,
    **behaviour: Any,
) -> int:
    async with db.write() as session:
        created = await create_subscription(
            session,
            SYSTEM,
            WebhookCreate(url=url or receiver.url(name), events=list(events), active=active),
        )
    receiver.expect(name, created.secret, **behaviour)
    return created.id


async def rows(db: Database, subscription_id: int | None = None) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(col(WebhookDelivery.id))
    if subscription_id is not None:
        query = query.where(WebhookDelivery.subscription_id == subscription_id)
    async with db.read() as session:
        return list((await session.exec(query)).all())


async def row(db: Database, delivery_id: int) -> WebhookDelivery:
    async with db.read() as session:
        found = await session.get(WebhookDelivery, delivery_id)
    assert found is not None
    return found


def status_is(db: Database, delivery_id: int, status: DeliveryStatus) -> Callable[[], Any]:
    async def check() -> bool:
        return (await row(db, delivery_id)).status == status

    return check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- signing and the schedule (no I/O) ----------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = json.dumps({"a": "Hội nghị"}, ensure_ascii=False, separators=(",", ":")).encode()
    # Computed with: printf '1700000000.{"a":"Hội nghị"}' | openssl dgst -sha256 -hmac 'bí-mật'
    expected = "f414ab593657411b77567d24855b7651b7934f145b3adc8c1392b10e17a44c74"
    assert sign("bí-mật", 1700000000, body) == expected
    assert sign("bí-mật", 1700000001, body) != expected  # the timestamp is signed
    assert sign("khác", 1700000000, body) != expected


def test_retry_delay_doubles_from_the_setting_and_is_capped_at_an_hour() -> None:
    assert [retry_delay(n, 2) for n in range(1, 6)] == [2, 4, 8, 16, 32]
    assert retry_delay(11, 2) == 2048
    assert retry_delay(12, 2) == MAX_BACKOFF_SECONDS == 3600
    assert retry_delay(500, 2) == 3600  # no overflow for absurd counts


# --- delivery ---------------------------------------------------------------------------


async def test_delivery_failing_twice_succeeds_on_the_third_attempt_with_one_key(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    sub = await subscribe(database, receiver, "flaky", ("room.ended",), script=[500, 500])
    service = make_service()
    await service.start()
    data = {"meeting_id": 7, "reason": "chủ trì kết thúc"}
    [delivery_id] = await service.enqueue("room.ended", data, event_id="evt-123")

    await wait_until(status_is(database, delivery_id, DeliveryStatus.DELIVERED), what="delivery")
    got = receiver.at("flaky")
    assert len(got) == 3
    assert receiver.bad_signatures == []
    assert {r.key for r in got} == {"evt-123"}
    assert {r.headers["Hoinghi-Delivery"] for r in got} == {str(delivery_id)}
    for r in got:
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["Hoinghi-Event"] == "room.ended"
        assert r.headers["Hoinghi-Signature"].startswith("sha256=")
        assert r.json["id"] == "evt-123"
        assert r.json["event"] == "room.ended"
        assert r.json["data"] == data
    assert len({r.body for r in got}) == 1  # every attempt sends the same event
    # Exponential backoff: at least 0.05 s, then 0.1 s, between attempts.
    assert got[1].at - got[0].at >= 0.05
    assert got[2].at - got[1].at >= 0.1
    final = await row(database, delivery_id)
    assert final.subscription_id == sub
    assert (final.attempts, final.last_status, final.last_error) == (3, 200, "")
    assert final.delivered_at is not None


async def test_retry_waits_for_the_backoff_not_for_a_poll(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    # A long retry: after one failure the row waits, and no second attempt comes early.
    await subscribe(database, receiver, "once", ("room.started",), script=[500])
    service = make_service(retry_seconds=30.0)
    await service.start()
    [delivery_id] = await service.enqueue("room.started", {"meeting_id": 1})
    await wait_until(lambda: len(receiver.at("once")) == 1, what="first attempt")

    async def failed_once() -> bool:
        r = await row(database, delivery_id)
        return r.attempts == 1

    await wait_until(failed_once, what="the failure recorded")
    r = await row(database, delivery_id)
    assert r.status == DeliveryStatus.PENDING
    assert (r.last_status, r.last_error) == (500, "HTTP 500 Internal Server Error")
    assert r.next_attempt_at - utcnow() > timedelta(seconds=25)
    # Something else delivered meanwhile proves the runner ran again without retrying it.
    await subscribe(database, receiver, "other", ("recording.finished",))
    [other] = await service.enqueue("recording.finished", {"recording_id": 3})
    await wait_until(status_is(database, other, DeliveryStatus.DELIVERED), what="other")
    assert len(receiver.at("once")) == 1


async def test_a_hanging_receiver_does_not_delay_a_healthy_one(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    hanging = await subscribe(database, receiver, "hang", hang=True)
    healthy = await subscribe(database, receiver, "healthy")
    # Concurrency 4 and a 30 s timeout: six events to the hanging receiver would fill
    # every slot if it could take more than one, and the healthy one would wait 30 s.
    service = make_service(timeout_seconds=30.0, concurrency=4)
    await service.start()
    started = time.monotonic()
    for n in range(6):
        await service.enqueue("participant.joined", {"n": n})
    await wait_until(lambda: len(receiver.at("healthy")) == 6, what="healthy deliveries")
    assert time.monotonic() - started < 10.0
    assert [r.json["data"]["n"] for r in receiver.at("healthy")] == list(range(6))
    assert all(r.status == DeliveryStatus.PENDING for r in await rows(database, hanging))
    assert len(receiver.at("hang")) == 1  # one slot at most for one subscription
    healthy_rows = await rows(database, healthy)
    assert [r.status for r in healthy_rows] == [DeliveryStatus.DELIVERED] * 6


async def test_a_timeout_counts_as_a_failed_attempt(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    await subscribe(database, receiver, "slow", hang=True)
    service = make_service(timeout_seconds=0.3, max_attempts=2)
    await service.start()
    [delivery_id] = await service.enqueue("room.started", {"meeting_id": 1})
    await wait_until(status_is(database, delivery_id, DeliveryStatus.GIVEN_UP), what="given up")
    r = await row(database, delivery_id)
    assert r.attempts == 2
    assert r.last_status is None
    assert "no answer within 0.3 s" in r.last_error
    assert len(receiver.at("slow")) == 2


async def test_an_always_failing_receiver_is_given_up_after_max_attempts(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    await subscribe(database, receiver, "gone", ("room.ended",), then=404)
    await subscribe(database, receiver, "fine", ("recording.failed",))
    service = make_service(max_attempts=3)
    await service.start()
    [delivery_id] = await service.enqueue("room.ended", {"meeting_id": 2})
    await wait_until(status_is(database, delivery_id, DeliveryStatus.GIVEN_UP), what="given up")
    r = await row(database, delivery_id)
    assert (r.attempts, r.last_status) == (3, 404)
    assert "404" in r.last_error
    assert r.delivered_at is None
    # The runner keeps running (another event is delivered) and never tries it again.
    [other] = await service.enqueue("recording.failed", {"recording_id": 1})
    await wait_until(status_is(database, other, DeliveryStatus.DELIVERED), what="other")
    assert len(receiver.at("gone")) == 3


async def test_connection_refused_is_retried_then_given_up(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    await subscribe(
        database, receiver, "closed", url=f"http://127.0.0.1:{free_port()}/hooks/closed"
    )
    service = make_service(max_attempts=2)
    await service.start()
    [delivery_id] = await service.enqueue("room.started", {"meeting_id": 1})
    await wait_until(status_is(database, delivery_id, DeliveryStatus.GIVEN_UP), what="given up")
    r = await row(database, delivery_id)
    assert r.attempts == 2
    assert r.last_status is None
    assert "Connect" in r.last_error  # aiohttp's ClientConnectorError, named


async def test_redirects_are_not_followed(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    target = await subscribe(database, receiver, "target", ("recording.composed",))
    await subscribe(database, receiver, "moved", ("room.started",), redirect_to="/hooks/target")
    service = make_service(max_attempts=1)
    await service.start()
    [delivery_id] = await service.enqueue("room.started", {"meeting_id": 1})
    await wait_until(status_is(database, delivery_id, DeliveryStatus.GIVEN_UP), what="given up")
    r = await row(database, delivery_id)
    assert r.last_status == 302
    assert "redirect" in r.last_error
    assert "/hooks/target" in r.last_error
    assert receiver.at("target") == []
    assert await rows(database, target) == []


async def test_vietnamese_text_and_emoji_arrive_byte_exact(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    assert NFC != NFD
    await subscribe(database, receiver, "vi")
    service = make_service()
    await service.start()
    data = {"nfc": NFC, "nfd": NFD, "emoji": EMOJI, NFD: [NFC, EMOJI]}
    [delivery_id] = await service.enqueue("participant.joined", data, event_id="sự-kiện-1")
    await wait_until(status_is(database, delivery_id, DeliveryStatus.DELIVERED), what="delivery")
    [got] = receiver.at("vi")
    assert receiver.bad_signatures == []
    # Raw UTF-8 in the body, not \u escapes, in the form it was given.
    for text in (NFC, NFD, EMOJI):
        assert text.encode("utf-8") in got.body
    assert b"\\u" not in got.body
    body = got.json
    assert body["data"] == data
    assert body["data"]["nfd"] == NFD
    assert unicodedata.is_normalized("NFD", body["data"]["nfd"])
    assert body["data"]["nfc"] == NFC
    assert got.key == "sự-kiện-1"


async def test_pending_deliveries_resume_after_a_restart(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    await subscribe(database, receiver, "later", hang=True)
    # Written by a process that stopped before it sent anything.
    stopped = make_service()
    [first_id] = await stopped.enqueue("room.ended", {"meeting_id": 5}, event_id="first")
    await stopped.close()
    # The next process is shut down in the middle of the attempt (the receiver hangs),
    # with a second event queued behind it.
    interrupted = make_service(timeout_seconds=30.0)
    await interrupted.start()
    await wait_until(lambda: len(receiver.at("later")) == 1, what="the first attempt")
    [second_id] = await interrupted.enqueue("room.started", {"meeting_id": 5}, event_id="second")
    await interrupted.close()
    for delivery_id in (first_id, second_id):
        r = await row(database, delivery_id)
        assert (r.status, r.attempts) == (DeliveryStatus.PENDING, 0)
        assert r.next_attempt_at <= utcnow()  # the lease was handed back

    receiver.set("later", hang=False)
    resumed = make_service()
    await resumed.start()
    for delivery_id in (first_id, second_id):
        await wait_until(status_is(database, delivery_id, DeliveryStatus.DELIVERED), what="resume")
    assert [r.key for r in receiver.at("later")] == ["first", "first", "second"]
    # The interrupted attempt is not counted; the receiver saw the same key twice.
    assert (await row(database, first_id)).attempts == 1
    assert receiver.bad_signatures == []


async def test_enqueue_writes_one_row_per_active_matching_subscription(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    every = await subscribe(database, receiver, "every", ("*",))
    ended = await subscribe(database, receiver, "ended", ("room.ended", "recording.finished"))
    await subscribe(database, receiver, "started", ("room.started",))
    await subscribe(database, receiver, "off", ("*",), active=False)
    service = make_service()  # not started: only the rows are looked at
    ids = await service.enqueue("room.ended", {"meeting_id": 1}, event_id="e1")
    written = await rows(database)
    assert sorted(r.id for r in written) == sorted(ids)
    assert sorted(r.subscription_id for r in written) == sorted([every, ended])
    assert {(r.event, r.event_id, r.status) for r in written} == {
        ("room.ended", "e1", DeliveryStatus.PENDING)
    }
    # The same event again adds nothing; an unknown name matches only "*".
    assert await service.enqueue("room.ended", {"meeting_id": 1}, event_id="e1") == []
    assert len(await service.enqueue("something.new", {})) == 1
    assert len(await rows(database)) == 3
    with pytest.raises(TypeError):
        await service.enqueue("room.ended", {"at": object()})
    with pytest.raises(ValueError, match="64"):
        await service.enqueue("room.ended", {}, event_id="x" * 65)
    assert len(await rows(database)) == 3


async def test_following_the_bus_sends_every_event_but_the_internal_one(
    database: Database, receiver: Receiver, make_service: Callable[..., Webhooks]
) -> None:
    everything = await subscribe(database, receiver, "all", ("*",))
    await subscribe(database, receiver, "joined", ("participant.joined",))
    bus = InProcessBus()
    service = make_service()
    await service.follow(bus)
    await service.start()
    bus.publish(BusEvent("room.started", {"meeting_id": 9}))
    bus.publish(BusEvent("recording.state", {"meeting_id": 9, "on": True}))
    bus.publish(BusEvent("participant.joined", {"meeting_id": 9, "unit": "QB-SNV", "name": NFD}))
    bus.publish(BusEvent("recording.finished", {"meeting_id": 9, "recording_id": 1}))

    await wait_until(lambda: len(receiver.at("all")) == 3, what="all three events")
    await wait_until(lambda: len(receiver.at("joined")) == 1, what="the joined event")
    assert [r.headers["Hoinghi-Event"] for r in receiver.at("all")] == [
        "room.started",
        "participant.joined",
        "recording.finished",
    ]
    assert [r.event for r in await rows(database, everything)] == [
        "room.started",
        "participant.joined",
        "recording.finished",
    ]
    [joined] = receiver.at("joined")
    assert joined.json["data"]["name"] == NFD
    # One event, one id: both subscriptions see the same idempotency key.
    assert joined.key == receiver.at("all")[1].key
    assert receiver.bad_signatures == []
