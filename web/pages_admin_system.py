"""Administration, the system: the status page (live rooms, participants, media
worker load), webhook subscriptions with their delivery log, and recording
retention. Pages for administrators only; changes go through the JSON API.

- ``/admin/status`` renders ``GET /api/status`` (web/api_status.py) and
  admin_status.js polls it every few seconds.
- ``/admin/webhooks`` lists the subscriptions with their deliveries per status;
  admin_webhooks.js creates (the signing secret shown once), changes and deletes
  them through web/api_webhooks.py. ``/admin/webhooks/{id}`` is one
  subscription's delivery log, newest first, 50 a page, with "send again".
- ``/admin/retention`` shows the retention period in force, what a sweep now
  would delete, the recordings marked keep and the audit of past changes and
  sweeps; admin_retention.js sets the period and sweeps through web/api_retention.py.

Times are shown in Asia/Ho_Chi_Minh in the page's language.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from babel.dates import format_time
from babel.numbers import format_decimal
from sqlmodel import col, select

from conference.errors import NotFound
from conference.models import (
    AuditEntry,
    DeliveryStatus,
    Meeting,
    Recording,
    Role,
)
from conference.settings_store import RETENTION_DAYS
from conference.timezone import LOCAL_ZONE, to_local, utcnow
from recordings import webhooks as webhook_service
from recordings.webhooks import ALL_EVENTS, EVENT_NAMES

from .api_retention import retention_out
from .api_status import StatusOut, collect_status
from .appkeys import DATABASE
from .i18n import N_, Language
from .pages_frame import duration_text, json_for_script, page_actor, page_language, render
from .pages_meetings import ROLE_TEXT
from .params import row_id

__all__ = [
    "DELIVERY_PAGE_SIZE",
    "DELIVERY_STATUS_TEXT",
    "PARTICIPANT_STATE_TEXT",
    "ROOM_STATE_TEXT",
    "add_system_pages",
]

DELIVERY_PAGE_SIZE = 50

ROOM_STATE_TEXT = {"open": N_("lobby open"), "live": N_("live")}
PARTICIPANT_STATE_TEXT = {
    "active": N_("connected"),
    "lobby": N_("in the lobby"),
    "disconnected": N_("reconnecting"),
}
DELIVERY_STATUS_TEXT = {
    DeliveryStatus.PENDING: N_("pending"),
    DeliveryStatus.DELIVERED: N_("delivered"),
    DeliveryStatus.GIVEN_UP: N_("given up"),
}
AUDIT_TEXT = {
    "retention.update": N_("Period changed"),
    "retention.sweep": N_("Sweep"),
}


def _when(language: Language, value: datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return language.format_datetime(value)


def _number(language: Language, value: float, pattern: str = "#,##0") -> str:
    return format_decimal(value, pattern, locale=language.code)


def size_text(language: Language, size: int) -> str:
    """Bytes as people read them: "12,3 MB", "1,2 GB"."""
    if size >= 1e9:
        return f"{_number(language, size / 1e9, '#,##0.0')} GB"
    return f"{_number(language, size / 1e6, '#,##0.0')} MB"


def _yes(language: Language, value: bool) -> str:
    return language.gettext(N_("Yes")) if value else language.gettext(N_("No"))


# --- /admin and /admin/status ------------------------------------------------------------


async def admin_index(request: web.Request) -> web.StreamResponse:
    await page_actor(request, Role.ADMIN)
    raise web.HTTPFound("/admin/status")


def _worker_text(language: Language, status: StatusOut, worker: int | None) -> str:
    if status.media.engine == "none":
        return language.gettext(N_("no media"))
    if status.media.in_process:
        return language.gettext(N_("server process"))
    if worker is None:
        return "—"
    return language.gettext(N_("worker %(n)s")) % {"n": worker + 1}


def status_view(language: Language, status: StatusOut) -> dict[str, Any]:
    """The status as the page shows it (the script builds the same from the API)."""
    rooms = [
        {
            "meeting_id": r.meeting_id,
            "title": r.title,
            "state": r.state,
            "state_text": language.gettext(ROOM_STATE_TEXT.get(r.state, r.state)),
            "since": _when(language, r.live_since or r.opened_at),
            "connected": r.connected,
            "lobby": r.lobby,
            "recording": r.recording,
            "recording_text": _yes(language, r.recording),
            "worker": _worker_text(language, status, r.media_worker),
            "participants": [
                {
                    "unit_name": p.unit_name,
                    "unit_code": p.unit_code,
                    "role_text": language.gettext(ROLE_TEXT.get(p.role, p.role)),
                    "state": p.state,
                    "state_text": language.gettext(PARTICIPANT_STATE_TEXT.get(p.state, p.state)),
                }
                for p in r.participants
            ],
        }
        for r in status.rooms
    ]
    workers = [
        {
            "name": language.gettext(N_("worker %(n)s")) % {"n": w.index + 1},
            "pid": w.pid or "",
            "up_text": language.gettext(N_("running") if w.up else N_("down")),
            "up": w.up,
            "rooms": w.rooms,
            "restarts": w.restarts,
            "participants": w.load.get("participants", 0),
            "streams_out": w.load.get("streams_out", 0),
        }
        for w in status.media.workers
    ]
    return {
        "rooms": rooms,
        "workers": workers,
        "recordings": [
            {
                "id": r.id,
                "meeting_title": r.meeting_title,
                "number": r.number,
                "started": _when(language, r.started_at),
            }
            for r in status.recordings
        ],
        "uptime": duration_text(status.uptime_seconds),
        "started": _when(language, status.started_at),
        # To the second: the page refreshes every few seconds.
        "updated": format_time(
            to_local(status.now), "medium", tzinfo=LOCAL_ZONE, locale=language.code
        ),
    }


async def status_page(request: web.Request) -> web.StreamResponse:
    actor = await page_actor(request, Role.ADMIN)
    language = page_language(request)
    status = await collect_status(request.app)
    return render(
        request,
        language,
        "admin_status.html",
        actor=actor,
        admin_tab="/admin/status",
        server=status,
        view=status_view(language, status),
        page_json=json_for_script({"poll_seconds": 5, "url": "/api/status"}),
    )


# --- /admin/webhooks ----------------------------------------------------------------------


def _events_text(language: Language, events: list[str]) -> str:
    if ALL_EVENTS in events:
        return language.gettext(N_("all events"))
    return ", ".join(events)


async def webhooks_page(request: web.Request) -> web.StreamResponse:
    actor = await page_actor(request, Role.ADMIN)
    language = page_language(request)
    async with request.app[DATABASE].read() as session:
        subs = await webhook_service.list_subscriptions(session)
        counts = await webhook_service.delivery_counts(session)
    zero = dict.fromkeys(DeliveryStatus, 0)
    rows = [
        {
            "id": s.id,
            "url": s.url,
            "events": s.events,
            "events_text": _events_text(language, s.events),
            "active": s.active,
            "active_text": _yes(language, s.active),
            "created": _when(language, s.created_at),
            "pending": counts.get(s.id, zero)[DeliveryStatus.PENDING],
            "delivered": counts.get(s.id, zero)[DeliveryStatus.DELIVERED],
            "given_up": counts.get(s.id, zero)[DeliveryStatus.GIVEN_UP],
        }
        for s in subs
    ]
    return render(
        request,
        language,
        "admin_webhooks.html",
        actor=actor,
        admin_tab="/admin/webhooks",
        rows=rows,
        event_names=EVENT_NAMES,
        all_events=ALL_EVENTS,
        page_json=json_for_script({"events": list(EVENT_NAMES), "all": ALL_EVENTS}),
    )


async def webhook_page(request: web.Request) -> web.StreamResponse:
    """One subscription's delivery log, newest first; ``?status=`` filters, ``?page=`` pages."""
    actor = await page_actor(request, Role.ADMIN)
    language = page_language(request)
    webhook_id = row_id(request.match_info["webhook_id"])
    status_filter = request.query.get("status", "")
    statuses = [DeliveryStatus(status_filter)] if status_filter in set(DeliveryStatus) else []
    page_text = request.query.get("page", "1")
    number = int(page_text) if page_text.isascii() and page_text.isdigit() else 1
    number = min(max(number, 1), 100_000)
    async with request.app[DATABASE].read() as session:
        sub = None
        if webhook_id is not None:
            try:
                sub = await webhook_service.get_subscription(session, webhook_id)
            except NotFound:
                sub = None
        if sub is None or webhook_id is None:
            return render(
                request,
                language,
                "admin_webhook.html",
                status=404,
                actor=actor,
                admin_tab="/admin/webhooks",
                missing=True,
            )
        page = await webhook_service.list_deliveries(
            session,
            webhook_id,
            statuses=statuses,
            limit=DELIVERY_PAGE_SIZE,
            offset=(number - 1) * DELIVERY_PAGE_SIZE,
        )
        counts = (await webhook_service.delivery_counts(session, webhook_id)).get(
            webhook_id, dict.fromkeys(DeliveryStatus, 0)
        )
    rows = [
        {
            "id": d.id,
            "event": d.event,
            "event_id": d.event_id,
            "status": d.status.value,
            "status_text": language.gettext(DELIVERY_STATUS_TEXT[d.status]),
            "attempts": d.attempts,
            "last_status": d.last_status if d.last_status is not None else "",
            "last_error": d.last_error,
            "next_attempt": _when(language, d.next_attempt_at),
            "created": _when(language, d.created_at),
            "delivered": _when(language, d.delivered_at),
            "meeting_id": d.data.get("meeting_id", ""),
        }
        for d in page.items
    ]
    pages = max((page.total + DELIVERY_PAGE_SIZE - 1) // DELIVERY_PAGE_SIZE, 1)

    def link(n: int) -> str:
        query = f"?page={n}" + (f"&status={status_filter}" if statuses else "")
        return f"/admin/webhooks/{webhook_id}{query}"

    return render(
        request,
        language,
        "admin_webhook.html",
        actor=actor,
        admin_tab="/admin/webhooks",
        missing=False,
        sub=webhook_service.to_public(sub),
        events_text=_events_text(language, list(sub.events)),
        active_text=_yes(language, sub.active),
        counts={s.value: n for s, n in counts.items()},
        statuses=[(s.value, language.gettext(t)) for s, t in DELIVERY_STATUS_TEXT.items()],
        status_filter=statuses[0].value if statuses else "",
        rows=rows,
        total=page.total,
        page=number,
        pages=pages,
        previous_url=link(number - 1) if number > 1 else "",
        next_url=link(number + 1) if number < pages else "",
        page_json=json_for_script({"webhook_id": webhook_id}),
    )


# --- /admin/retention ----------------------------------------------------------------------


def _audit_text(language: Language, entry: AuditEntry) -> str:
    detail = entry.detail
    if entry.action == "retention.update":
        return language.gettext(N_("from %(before)s to %(after)s days")) % {
            "before": detail.get("previous_days", "?"),
            "after": detail.get("days", "?"),
        }
    return language.gettext(N_("%(n)s recordings deleted (%(size)s), period %(days)s days")) % {
        "n": detail.get("recordings", 0),
        "size": size_text(language, int(detail.get("size_bytes", 0) or 0)),
        "days": detail.get("days", "?"),
    }


async def retention_page(request: web.Request) -> web.StreamResponse:
    actor = await page_actor(request, Role.ADMIN)
    language = page_language(request)
    policy = await retention_out(request.app)
    async with request.app[DATABASE].read() as session:
        kept = (
            await session.exec(
                select(Recording, Meeting.title)
                .join(Meeting, col(Meeting.id) == col(Recording.meeting_id))
                .where(col(Recording.keep).is_(True))
                .order_by(col(Recording.started_at).desc())
                .limit(500)
            )
        ).all()
        history = (
            await session.exec(
                select(AuditEntry)
                .where(
                    col(AuditEntry.object_type) == "setting",
                    col(AuditEntry.object_id) == RETENTION_DAYS,
                )
                .order_by(col(AuditEntry.id).desc())
                .limit(100)
            )
        ).all()
    kept_rows = [
        {
            "id": r.id,
            "meeting_title": title,
            "number": r.number,
            "started": _when(language, r.started_at),
            "size": size_text(language, r.size_bytes),
        }
        for r, title in kept
    ]
    history_rows = [
        {
            "at": _when(language, e.at),
            "actor": e.actor,
            "action_text": language.gettext(AUDIT_TEXT.get(e.action, e.action)),
            "detail": _audit_text(language, e),
        }
        for e in history
    ]
    return render(
        request,
        language,
        "admin_retention.html",
        actor=actor,
        admin_tab="/admin/retention",
        policy=policy,
        expired_size=size_text(language, policy.expired_bytes),
        kept=kept_rows,
        history=history_rows,
        checked_at=_when(language, utcnow()),
        page_json=json_for_script({"days": policy.days, "max_days": policy.max_days}),
    )


def add_system_pages(app: web.Application) -> None:
    """``/admin`` (to the status page), ``/admin/status``, ``/admin/webhooks``,
    ``/admin/webhooks/{id}`` and ``/admin/retention``."""
    app.router.add_get("/admin", admin_index)
    app.router.add_get("/admin/status", status_page)
    app.router.add_get("/admin/webhooks", webhooks_page)
    app.router.add_get("/admin/webhooks/{webhook_id}", webhook_page)
    app.router.add_get("/admin/retention", retention_page)
