"""Webhooks: signed HTTP POSTs of meeting and recording events to subscribed receivers.

Delivery is at least once. An event becomes one ``WebhookDelivery`` row per
matching subscription, written in one transaction before anything is sent, so
a restart resumes whatever was pending. The runner claims due rows (a lease:
``next_attempt_at`` moves past the attempt's timeout, so a crashed process's
rows come due again and a second node skips them), POSTs them a few at a time,
and records each outcome::

    pending --2xx--------------------------------------> delivered
    pending --anything else, attempts < max--> pending (retry after backoff)
    pending --anything else, attempts = max--> given_up

The backoff is ``retry_seconds * 2 ** (attempts - 1)``, at most an hour. Every
attempt of one event to one subscription carries the same ``Idempotency-Key``
(the event id), so receivers can drop repeats. The body is signed with the
subscription's secret (HMAC-SHA256 over ``"<timestamp>." + body``) so the
receiver knows it came from here and when.

This module also holds the subscription and delivery-log operations the admin
API calls (each change writes an audit entry in the same transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from yarl import URL

from conference import __version__
from conference.actors import Actor
from conference.audit import record_audit
from conference.config import Config
from conference.db import Database
from conference.errors import InvalidInput, NotFound
from conference.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from conference.timezone import to_local, utcnow

__all__ = [
    "ALL_EVENTS",
    "EVENT_NAMES",
    "INTERNAL_EVENTS",
    "MAX_BACKOFF_SECONDS",
    "DeliveryPage",
    "DeliveryPublic",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookPublic",
    "WebhookSettings",
    "WebhookUpdate",
    "Webhooks",
    "check_url",
    "create_subscription",
    "delete_subscription",
    "delivery_counts",
    "encode_body",
    "get_subscription",
    "list_deliveries",
    "list_subscriptions",
    "redeliver",
    "retry_delay",
    "sign",
    "to_public",
    "update_subscription",
]

log = logging.getLogger(__name__)

# What a subscription may ask for. Room events come from the signaling bus; the
# meetings API publishes the meeting ones (after the change is committed) and the
# recorder service the recording ones on the same bus.
EVENT_NAMES = (
    "meeting.rescheduled",
    "meeting.cancelled",
    "room.started",
    "room.ended",
    "participant.joined",
    "participant.left",
    "recording.started",
    "recording.finished",
    "recording.failed",
    "recording.composed",
)
ALL_EVENTS = "*"
# Bus events that stay inside the server (the recorder's own trigger).
INTERNAL_EVENTS = frozenset({"recording.state"})
MAX_BACKOFF_SECONDS = 3600.0
# How long the runner sleeps with nothing due: rows written by another node or
# by hand are found within this time, without polling in between.
_IDLE_SECONDS = 60.0
# A claimed row stays invisible to other runners this long past the timeout.
_LEASE_MARGIN_SECONDS = 60.0
_ERROR_LENGTH = 500
_NAME_LENGTH = 64  # the columns holding event names and ids
_SECRET_BYTES = 32


# --- signing and the body ----------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of ``"<timestamp>." + body`` keyed with ``secret``, as hex.

    The timestamp is inside the MAC so a captured request cannot be replayed
    later with a fresh ``Hoinghi-Timestamp``.
    """
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def encode_body(payload: dict[str, Any]) -> bytes:
    """The POST body: UTF-8 JSON, Vietnamese text as itself (not ``\\u`` escapes).

    Raises:
        TypeError: ``payload`` holds something JSON cannot represent.
        UnicodeEncodeError: it holds a lone surrogate.
    """
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def retry_delay(attempts: int, retry_seconds: float, cap: float = MAX_BACKOFF_SECONDS) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: doubling, capped."""
    exponent = min(max(attempts - 1, 0), 32)  # 2**32 s is past any cap; no overflow
    return float(min(retry_seconds * 2**exponent, cap))


def check_url(url: str) -> str:
    """Accept an absolute http(s) URL with a host and no credentials.

    Raises:
        ValueError: anything else (pydantic reports it as the field's error).
    """
    if any(unicodedata.category(ch) in {"Cc", "Cs", "Zs"} for ch in url):
        raise ValueError("the URL must not contain spaces or control characters")
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as e:
        raise ValueError(f"not a URL: {e}") from e
    if parsed.scheme not in {"http", "https"}:
        raise ValueError("the URL must start with http:// or https://")
    if not parsed.host:
        raise ValueError("the URL has no host")
    if parsed.user is not None or parsed.password is not None:
        # They would show in the subscription list and the audit trail; the
        # signature is how a receiver knows the sender.
        raise ValueError("the URL must not carry a user name or password")
    return url


def _check_events(events: list[str]) -> list[str]:
    allowed = {*EVENT_NAMES, ALL_EVENTS}
    out: list[str] = []
    for name in events:
        if name not in allowed:
            known = ", ".join([*EVENT_NAMES, ALL_EVENTS])
            raise ValueError(f"unknown event {name!r}; known: {known}")
        if name not in out:
            out.append(name)
    return out


def _wants(events: Iterable[str], name: str) -> bool:
    return any(e in (name, ALL_EVENTS) for e in events)


# --- shapes at the API ------------------------------------------------------------------


_FORBID = ConfigDict(extra="forbid")


class WebhookCreate(BaseModel):
    model_config = _FORBID
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)
    active: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _check_events(value)


class WebhookUpdate(BaseModel):
    """A partial update; a field given as null is refused."""

    model_config = _FORBID
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=20)
    active: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_events(value)


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime

    @field_serializer("created_at")
    def _show_local(self, value: datetime) -> str:
        return to_local(value).isoformat()


class WebhookCreated(WebhookPublic):
    """The answer to a create: the only time the secret is shown."""

    secret: str


class DeliveryPublic(BaseModel):
    id: int
    webhook_id: int
    event_id: str
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None  # null once delivered or given up
    last_status: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
    data: dict[str, Any]

    @field_serializer("next_attempt_at", "created_at", "delivered_at")
    def _show_local(self, value: datetime | None) -> str | None:
        return None if value is None else to_local(value).isoformat()


@dataclass(slots=True)
class DeliveryPage:
    items: list[DeliveryPublic]
    total: int
    limit: int
    offset: int


def to_public(sub: WebhookSubscription) -> WebhookPublic:
    assert sub.id is not None
    return WebhookPublic(
        id=sub.id,
        url=sub.url,
        events=list(sub.events),
        active=sub.active,
        created_at=sub.created_at,
    )


def _delivery_public(row: WebhookDelivery) -> DeliveryPublic:
    assert row.id is not None
    data = row.payload.get("data")
    return DeliveryPublic(
        id=row.id,
        webhook_id=row.subscription_id,
        event_id=row.event_id,
        event=row.event,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == DeliveryStatus.PENDING else None,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        data=data if isinstance(data, dict) else {},
    )


# --- subscriptions and the delivery log (the admin API's domain) --------------------


async def get_subscription(session: AsyncSession, webhook_id: int) -> WebhookSubscription:
    sub = await session.get(WebhookSubscription, webhook_id)
    if sub is None:
        raise NotFound(f"no webhook with id {webhook_id}", code="unknown_webhook")
    return sub


async def list_subscriptions(session: AsyncSession) -> list[WebhookPublic]:
    query = select(WebhookSubscription).order_by(col(WebhookSubscription.id))
    return [to_public(sub) for sub in (await session.exec(query)).all()]


async def create_subscription(
    session: AsyncSession, actor: Actor, data: WebhookCreate
) -> WebhookCreated:
    """Store a subscription with a fresh secret; the answer is the only place it shows."""
    sub = WebhookSubscription(
        url=data.url,
        secret=secrets.token_urlsafe(_SECRET_BYTES),
        events=list(data.events),
        active=data.active,
    )
    session.add(sub)
    await session.flush()
    record_audit(
        session,
        actor,
        "webhook.create",
        "webhook",
        sub.id,
        url=sub.url,
        events=sub.events,
        active=sub.active,
    )
    return WebhookCreated(**to_public(sub).model_dump(), secret=sub.secret)


async def update_subscription(
    session: AsyncSession, actor: Actor, webhook_id: int, data: WebhookUpdate
) -> WebhookPublic:
    sub = await get_subscription(session, webhook_id)
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
    if data.url is not None:
        sub.url = data.url
    if data.events is not None:
        sub.events = list(data.events)
    if data.active is not None:
        sub.active = data.active
    session.add(sub)
    await session.flush()
    record_audit(session, actor, "webhook.update", "webhook", webhook_id, changes=changes)
    return to_public(sub)


async def delete_subscription(session: AsyncSession, actor: Actor, webhook_id: int) -> None:
    """Delete a subscription and its delivery log (set ``active`` false to keep the log)."""
    sub = await get_subscription(session, webhook_id)
    result = await session.exec(
        sa.delete(WebhookDelivery).where(col(WebhookDelivery.subscription_id) == webhook_id)
    )
    await session.delete(sub)
    record_audit(
        session,
        actor,
        "webhook.delete",
        "webhook",
        webhook_id,
        url=sub.url,
        deliveries_deleted=int(result.rowcount or 0),
    )


async def list_deliveries(
    session: AsyncSession,
    webhook_id: int,
    *,
    statuses: Sequence[DeliveryStatus] = (),
    limit: int = 100,
    offset: int = 0,
) -> DeliveryPage:
    """One subscription's deliveries, newest first."""
    await get_subscription(session, webhook_id)
    filters: list[Any] = [col(WebhookDelivery.subscription_id) == webhook_id]
    if statuses:
        filters.append(col(WebhookDelivery.status).in_(list(statuses)))
    total = (
        await session.exec(select(func.count()).select_from(WebhookDelivery).where(*filters))
    ).one()
    rows = (
        await session.exec(
            select(WebhookDelivery)
            .where(*filters)
            .order_by(col(WebhookDelivery.id).desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return DeliveryPage(
        items=[_delivery_public(r) for r in rows], total=int(total), limit=limit, offset=offset
    )


async def delivery_counts(
    session: AsyncSession, webhook_id: int | None = None
) -> dict[int, dict[DeliveryStatus, int]]:
    """Deliveries per subscription and status (read-only), for the admin pages:
    ``{subscription id: {status: count}}``, every status present (0 when none)."""
    query = select(WebhookDelivery.subscription_id, WebhookDelivery.status, func.count()).group_by(
        col(WebhookDelivery.subscription_id), col(WebhookDelivery.status)
    )
    if webhook_id is not None:
        query = query.where(col(WebhookDelivery.subscription_id) == webhook_id)
    out: dict[int, dict[DeliveryStatus, int]] = {}
    for sub_id, status, count in (await session.exec(query)).all():
        counts = out.setdefault(sub_id, dict.fromkeys(DeliveryStatus, 0))
        counts[DeliveryStatus(status)] = int(count)
    return out


async def redeliver(
    session: AsyncSession, actor: Actor, webhook_id: int, delivery_id: int
) -> DeliveryPublic:
    """Make a delivery pending and due now; its attempts so far are kept (one that has
    used them all gets one more attempt). The caller wakes the runner after commit."""
    await get_subscription(session, webhook_id)
    row = await session.get(WebhookDelivery, delivery_id)
    if row is None or row.subscription_id != webhook_id:
        raise NotFound(
            f"webhook {webhook_id} has no delivery with id {delivery_id}", code="unknown_delivery"
        )
    previous = row.status
    row.status = DeliveryStatus.PENDING
    row.next_attempt_at = utcnow()
    row.delivered_at = None
    session.add(row)
    await session.flush()
    record_audit(
        session,
        actor,
        "webhook.redeliver",
        "webhook",
        webhook_id,
        delivery_id=delivery_id,
        event=row.event,
        event_id=row.event_id,
        previous_status=previous.value,
        attempts=row.attempts,
    )
    return _delivery_public(row)


# --- the delivery service ---------------------------------------------------------------


class EventSource(Protocol):
    """What ``follow`` needs of a bus (``signaling.bus.Bus`` fits)."""

    def subscribe(self, max_backlog: int = 1000) -> AsyncIterator[Any]: ...


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    max_attempts: int = 8
    retry_seconds: float = 2.0
    timeout_seconds: float = 10.0
    # Deliveries in flight at once (one per subscription at a time), so a receiver
    # that hangs holds one slot for at most ``timeout_seconds``.
    concurrency: int = 4
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS

    @classmethod
    def from_config(cls, config: Config) -> WebhookSettings:
        return cls(
            max_attempts=config.webhook_max_attempts,
            retry_seconds=float(config.webhook_retry_seconds),
            timeout_seconds=float(config.webhook_timeout_seconds),
        )


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: int
    subscription_id: int
    url: str
    secret: str
    event: str
    event_id: str
    payload: dict[str, Any]
    due_at: datetime  # when it fell due, before the lease


@dataclass(slots=True)
class _Outcome:
    status: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Webhooks:
    """Writes deliveries for events and sends them in the background.

    ``start()`` begins the runner (pending rows of earlier runs included);
    ``close()`` stops it and hands in-flight rows back, due as they were.
    """

    def __init__(self, db: Database, settings: WebhookSettings | None = None) -> None:
        self.db = db
        self.settings = settings or WebhookSettings()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._followers: list[asyncio.Task[None]] = []
        self._inflight: dict[int, tuple[_Job, asyncio.Task[None]]] = {}
        self._busy: set[int] = set()  # subscriptions with a delivery in flight
        self._http: aiohttp.ClientSession | None = None

    # -- writing events --------------------------------------------------------

    async def enqueue(
        self,
        name: str,
        data: dict[str, Any],
        event_id: str | None = None,
        *,
        at: datetime | None = None,
    ) -> list[int]:
        """Write one pending delivery per active subscription that wants ``name``.

        Args:
            name: the event name (``room.ended``, ...).
            data: the event's fields; must be JSON (checked here, not at send time).
            event_id: the idempotency key; a new one if not given. Enqueueing the
                same id again adds nothing for subscriptions that have it already.
            at: when the event happened (default now).

        Returns:
            The ids of the deliveries written.

        Raises:
            TypeError, ValueError: ``data`` is not JSON, or a name or id is too long.
        """
        event_id = event_id or uuid.uuid4().hex
        if not 0 < len(name) <= _NAME_LENGTH or len(event_id) > _NAME_LENGTH:
            raise ValueError(f"event names and ids are 1 to {_NAME_LENGTH} characters")
        payload = {
            "id": event_id,
            "event": name,
            "at": to_local(at or utcnow()).isoformat(),
            "data": data,
        }
        encode_body(payload)  # refuse what cannot be sent before anything is stored
        ids: list[int] = []
        async with self.db.write() as session:
            subs = (
                await session.exec(
                    select(WebhookSubscription).where(col(WebhookSubscription.active).is_(True))
                )
            ).all()
            wanted = [s for s in subs if _wants(s.events, name)]
            if not wanted:
                return []
            have = set(
                (
                    await session.exec(
                        select(WebhookDelivery.subscription_id).where(
                            WebhookDelivery.event_id == event_id
                        )
                    )
                ).all()
            )
            rows = [
                WebhookDelivery(
                    subscription_id=s.id, event_id=event_id, event=name, payload=payload
                )
                for s in wanted
                if s.id is not None and s.id not in have
            ]
            session.add_all(rows)
            await session.flush()
            ids = [r.id for r in rows if r.id is not None]
        if ids:
            self.wake()
        return ids

    async def follow(self, bus: EventSource) -> None:
        """Enqueue every event published on ``bus`` from now on, internal ones excepted.

        Returns once subscribed, so nothing published after the call is missed.
        """
        task = asyncio.create_task(self._follow(bus), name="webhooks-follow")
        self._followers.append(task)
        # The task subscribes on its first step, which runs before this coroutine
        # resumes (the loop runs ready callbacks in order).
        await asyncio.sleep(0)

    async def _follow(self, bus: EventSource) -> None:
        async for event in bus.subscribe():
            if event.name in INTERNAL_EVENTS:
                continue
            try:
                await self.enqueue(event.name, dict(event.data), at=event.at)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bad event or a database hiccup loses that event, not the follower.
                log.exception("webhooks: could not enqueue %s", event.name)

    # -- the runner --------------------------------------------------------------

    def wake(self) -> None:
        """Look for due deliveries now (after an enqueue, a redelivery, a reactivation)."""
        self._wake.set()

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._http = aiohttp.ClientSession(
            headers={"User-Agent": f"hoinghi-webhooks/{__version__}"},
            trust_env=False,
            auto_decompress=False,
        )
        self._runner = asyncio.create_task(self._run(), name="webhooks-runner")

    async def close(self) -> None:
        # Cancelled deliveries remove themselves from _inflight: note them first.
        released = [job for job, _ in self._inflight.values()]
        tasks = [*self._followers, *(task for _, task in self._inflight.values())]
        if self._runner is not None:
            tasks.append(self._runner)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._followers.clear()
        self._runner = None
        self._inflight.clear()
        self._busy.clear()
        if released:
            # Hand the leased rows back as they were: the next start sends them at
            # once, in their order.
            try:
                async with self.db.write() as session:
                    for job in released:
                        await session.exec(
                            sa.update(WebhookDelivery)
                            .where(
                                col(WebhookDelivery.id) == job.delivery_id,
                                col(WebhookDelivery.status) == DeliveryStatus.PENDING,
                            )
                            .values(next_attempt_at=job.due_at)
                        )
            except Exception:
                log.exception("webhooks: could not release %d deliveries", len(released))
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            wait: float = _IDLE_SECONDS
            free = self.settings.concurrency - len(self._inflight)
            if free > 0:
                try:
                    jobs, next_due = await self._claim(free)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhooks: cannot read due deliveries; trying again")
                    jobs, next_due = [], utcnow() + timedelta(seconds=5)
                for job in jobs:
                    self._busy.add(job.subscription_id)
                    task = asyncio.create_task(
                        self._deliver(job), name=f"webhook-delivery-{job.delivery_id}"
                    )
                    self._inflight[job.delivery_id] = (job, task)
                if next_due is not None:
                    wait = min(wait, max((next_due - utcnow()).total_seconds(), 0.0))
            # A finished delivery, an enqueue or the next due time wakes us.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _claim(self, slots: int) -> tuple[list[_Job], datetime | None]:
        """Lease up to ``slots`` due deliveries, the oldest first and one per subscription;
        also return when the next pending one falls due."""
        now = utcnow()
        lease_until = now + timedelta(seconds=self.settings.timeout_seconds + _LEASE_MARGIN_SECONDS)
        jobs: list[_Job] = []
        skip = set(self._busy)
        async with self.db.write() as session:
            while len(jobs) < slots:
                query = (
                    select(WebhookDelivery, WebhookSubscription)
                    .join(
                        WebhookSubscription,
                        col(WebhookSubscription.id) == col(WebhookDelivery.subscription_id),
                    )
                    .where(
                        col(WebhookDelivery.status) == DeliveryStatus.PENDING,
                        col(WebhookDelivery.next_attempt_at) <= now,
                        col(WebhookSubscription.active).is_(True),
                    )
                    .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
                    .limit(1)
                    # PostgreSQL: two nodes never claim the same row. SQLite's write
                    # transactions are serial already (BEGIN IMMEDIATE).
                    .with_for_update(of=WebhookDelivery, skip_locked=True)
                )
                if skip:
                    query = query.where(col(WebhookDelivery.subscription_id).not_in(skip))
                found = (await session.exec(query)).first()
                if found is None:
                    break
                row, sub = found
                assert row.id is not None
                assert sub.id is not None
                skip.add(sub.id)
                due_at = row.next_attempt_at
                row.next_attempt_at = lease_until
                session.add(row)
                jobs.append(
                    _Job(
                        delivery_id=row.id,
                        subscription_id=sub.id,
                        url=sub.url,
                        secret=sub.secret,
                        event=row.event,
                        event_id=row.event_id,
                        payload=dict(row.payload),
                        due_at=due_at,
                    )
                )
            await session.flush()
            next_due = (
                await session.exec(
                    select(func.min(WebhookDelivery.next_attempt_at))
                    .join(
                        WebhookSubscription,
                        col(WebhookSubscription.id) == col(WebhookDelivery.subscription_id),
                    )
                    .where(
                        col(WebhookDelivery.status) == DeliveryStatus.PENDING,
                        col(WebhookDelivery.next_attempt_at) > now,
                        col(WebhookSubscription.active).is_(True),
                    )
                )
            ).one()
        return jobs, next_due

    async def _deliver(self, job: _Job) -> None:
        try:
            outcome = await self._post(job)
            await self._record(job, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the row is tried again.
            log.exception("webhooks: delivery %d failed unexpectedly", job.delivery_id)
        finally:
            self._inflight.pop(job.delivery_id, None)
            self._busy.discard(job.subscription_id)
            self.wake()

    async def _post(self, job: _Job) -> _Outcome:
        assert self._http is not None, "start() the service first"
        body = encode_body(job.payload)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Hoinghi-Event": job.event,
            "Hoinghi-Delivery": str(job.delivery_id),
            "Idempotency-Key": job.event_id,
            "Hoinghi-Timestamp": str(timestamp),
            "Hoinghi-Signature": f"sha256={sign(job.secret, timestamp, body)}",
        }
        timeout = self.settings.timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                async with self._http.post(
                    job.url,
                    data=body,
                    headers=headers,
                    # A redirect could send the signed event anywhere: not followed.
                    allow_redirects=False,
                ) as response:
                    await response.content.readany()  # a little of the answer, never all of it
                    outcome = _Outcome(status=response.status)
                    if 300 <= response.status < 400:
                        where = response.headers.get("Location", "")
                        outcome.error = f"redirect to {where!r} not followed"[:_ERROR_LENGTH]
                    elif not outcome.ok:
                        outcome.error = f"HTTP {response.status} {response.reason or ''}".strip()
                    return outcome
        except TimeoutError:
            return _Outcome(error=f"no answer within {timeout:g} s")
        except aiohttp.ClientError as e:
            return _Outcome(error=f"{type(e).__name__}: {e}"[:_ERROR_LENGTH])

    async def _record(self, job: _Job, outcome: _Outcome) -> None:
        now = utcnow()
        async with self.db.write() as session:
            row = await session.get(WebhookDelivery, job.delivery_id)
            if row is None:  # its subscription was deleted meanwhile
                return
            row.attempts += 1
            row.last_status = outcome.status
            row.last_error = outcome.error[:_ERROR_LENGTH]
            if outcome.ok:
                row.status = DeliveryStatus.DELIVERED
                row.delivered_at = now
                row.next_attempt_at = now
            elif row.attempts >= self.settings.max_attempts:
                row.status = DeliveryStatus.GIVEN_UP
                row.next_attempt_at = now
                log.warning(
                    "webhook delivery %d (%s to %s) given up after %d attempts: %s",
                    job.delivery_id,
                    job.event,
                    job.url,
                    row.attempts,
                    row.last_error,
                )
            else:
                delay = retry_delay(
                    row.attempts, self.settings.retry_seconds, self.settings.max_backoff_seconds
                )
                row.next_attempt_at = now + timedelta(seconds=delay)
                log.info(
                    "webhook delivery %d attempt %d failed (%s); retry in %g s",
                    job.delivery_id,
                    row.attempts,
                    row.last_error,
                    delay,
                )
            session.add(row)
