"""The live state of this server for administrators: ``GET /api/status``.

Rooms open in this process (with their sites), the media engine and its workers,
recordings in progress, composite jobs, webhook deliveries waiting or given up,
the database, the process's uptime and the version. Read-only; the status page
(web/pages_admin_system.py) renders the same answer and polls it.

Rooms and media are this process's own (each node has its rooms); recordings,
composites and webhooks are read from the shared database.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, field_serializer
from sqlmodel import col, func, select

from conference import __version__
from conference.models import (
    CompositeStatus,
    DeliveryStatus,
    Meeting,
    Recording,
    RecordingStatus,
    Role,
    WebhookDelivery,
)
from conference.timezone import to_local, utcnow
from signaling.media import MediaEngine
from signaling.rooms import RoomOverview

from .api import Api, Call, json_ok, roles
from .appkeys import DATABASE, MEDIA, ROOMS

__all__ = ["StatusOut", "add_status_routes", "collect_status"]

log = logging.getLogger(__name__)

# When this process started serving (the module is imported as the app is built).
STARTED_AT = datetime.now(UTC)
_STARTED_MONOTONIC = time.monotonic()
_PING_SECONDS = 2.0


def _local(value: datetime | None) -> str | None:
    return None if value is None else to_local(value).isoformat()


class SiteOut(BaseModel):
    unit_code: str
    unit_name: str
    role: str
    state: str  # lobby, active, disconnected


class RoomOut(BaseModel):
    meeting_id: int
    title: str
    state: str  # open, live
    starts_at: datetime
    ends_at: datetime
    opened_at: datetime | None
    live_since: datetime | None
    recording: bool
    connected: int
    lobby: int
    media_worker: int | None  # the worker process's index; None: none yet, or in-process
    participants: list[SiteOut]

    @field_serializer("starts_at", "ends_at", "opened_at", "live_since")
    def _show_local(self, value: datetime | None) -> str | None:
        return _local(value)


class WorkerOut(BaseModel):
    index: int
    pid: int | None
    up: bool
    rooms: int
    restarts: int
    load: dict[str, Any]


class MediaOut(BaseModel):
    engine: str  # embedded, none
    in_process: bool  # the media runs in the server process (no workers)
    workers: list[WorkerOut]
    load: dict[str, Any]  # in-process: rooms, participants, streams out, packets in


class RecordingNowOut(BaseModel):
    id: int
    meeting_id: int
    meeting_title: str
    number: int
    started_at: datetime

    @field_serializer("started_at")
    def _show_local(self, value: datetime) -> str | None:
        return _local(value)


class DatabaseOut(BaseModel):
    dialect: str  # sqlite, postgresql
    reachable: bool
    latency_ms: float | None


class CountsOut(BaseModel):
    queued: int
    running: int


class DeliveriesOut(BaseModel):
    pending: int
    given_up: int


class StatusOut(BaseModel):
    version: str
    now: datetime
    started_at: datetime
    uptime_seconds: float
    database: DatabaseOut
    rooms: list[RoomOut]
    media: MediaOut
    recordings: list[RecordingNowOut]  # null lists when the database does not answer
    composites: CountsOut | None
    webhooks: DeliveriesOut | None

    @field_serializer("now", "started_at")
    def _show_local(self, value: datetime) -> str | None:
        return _local(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def media_status(engine: MediaEngine) -> tuple[MediaOut, dict[int, int]]:
    """The engine's ``stats()`` in a fixed shape, and which worker holds each meeting."""
    stats = engine.stats()
    workers = stats.get("workers")
    placement: dict[int, int] = {}
    out: list[WorkerOut] = []
    if isinstance(workers, list):
        for w in workers:
            if not isinstance(w, dict):
                continue
            index = _int(w.get("index"))
            for mid in w.get("meetings", ()):
                if isinstance(mid, int):
                    placement[mid] = index
            load = w.get("load")
            out.append(
                WorkerOut(
                    index=index,
                    pid=w.get("pid") if isinstance(w.get("pid"), int) else None,
                    up=bool(w.get("up")),
                    rooms=_int(w.get("rooms")),
                    restarts=_int(w.get("restarts")),
                    load=load if isinstance(load, dict) else {},
                )
            )
    engine_name = str(stats.get("engine", "none"))
    in_process = engine_name != "none" and not isinstance(workers, list)
    load = {k: v for k, v in stats.items() if k not in ("engine", "workers")}
    return MediaOut(engine=engine_name, in_process=in_process, workers=out, load=load), placement


def _room(r: RoomOverview, placement: dict[int, int]) -> RoomOut:
    return RoomOut(
        meeting_id=r.meeting_id,
        title=r.title,
        state=r.state,
        starts_at=r.starts_at,
        ends_at=r.ends_at,
        opened_at=r.opened_at,
        live_since=r.live_since,
        recording=r.recording,
        connected=r.connected,
        lobby=r.lobby,
        media_worker=placement.get(r.meeting_id),
        participants=[
            SiteOut(unit_code=p.unit_code, unit_name=p.unit_name, role=p.role, state=p.state)
            for p in r.participants
        ],
    )


async def collect_status(app: web.Application) -> StatusOut:
    """The whole status; a database that does not answer is reported, not raised."""
    db = app[DATABASE]
    media, placement = media_status(app[MEDIA])
    rooms = [_room(r, placement) for r in app[ROOMS].overview()]
    started = time.monotonic()
    reachable = True
    try:
        await db.ping(_PING_SECONDS)
    except Exception as e:  # any failure to answer
        log.warning("status: the database does not answer: %s", e)
        reachable = False
    latency = round((time.monotonic() - started) * 1000, 1) if reachable else None
    recordings: list[RecordingNowOut] = []
    composites: CountsOut | None = None
    webhooks: DeliveriesOut | None = None
    if reachable:
        try:
            recordings, composites, webhooks = await _stored(app)
        except Exception:
            log.exception("status: could not read the database")
            reachable = False
    return StatusOut(
        version=__version__,
        now=utcnow(),
        started_at=STARTED_AT,
        uptime_seconds=round(time.monotonic() - _STARTED_MONOTONIC, 1),
        database=DatabaseOut(dialect=db.dialect, reachable=reachable, latency_ms=latency),
        rooms=rooms,
        media=media,
        recordings=recordings,
        composites=composites,
        webhooks=webhooks,
    )


async def _stored(
    app: web.Application,
) -> tuple[list[RecordingNowOut], CountsOut, DeliveriesOut]:
    async with app[DATABASE].read() as session:
        rows = (
            await session.exec(
                select(Recording, Meeting.title)
                .join(Meeting, col(Meeting.id) == col(Recording.meeting_id))
                .where(col(Recording.status) == RecordingStatus.RECORDING)
                .order_by(col(Recording.started_at))
            )
        ).all()
        jobs = dict(
            (
                await session.exec(
                    select(Recording.composite_status, func.count())
                    .where(
                        col(Recording.composite_status).in_(
                            [CompositeStatus.QUEUED, CompositeStatus.RUNNING]
                        )
                    )
                    .group_by(col(Recording.composite_status))
                )
            ).all()
        )
        deliveries = dict(
            (
                await session.exec(
                    select(WebhookDelivery.status, func.count())
                    .where(
                        col(WebhookDelivery.status).in_(
                            [DeliveryStatus.PENDING, DeliveryStatus.GIVEN_UP]
                        )
                    )
                    .group_by(col(WebhookDelivery.status))
                )
            ).all()
        )
    recordings = [
        RecordingNowOut(
            id=row.id or 0,
            meeting_id=row.meeting_id,
            meeting_title=title,
            number=row.number,
            started_at=row.started_at,
        )
        for row, title in rows
    ]
    return (
        recordings,
        CountsOut(
            queued=int(jobs.get(CompositeStatus.QUEUED, 0)),
            running=int(jobs.get(CompositeStatus.RUNNING, 0)),
        ),
        DeliveriesOut(
            pending=int(deliveries.get(DeliveryStatus.PENDING, 0)),
            given_up=int(deliveries.get(DeliveryStatus.GIVEN_UP, 0)),
        ),
    )


def add_status_routes(api: Api) -> None:
    @api.route(
        "GET",
        "/api/status",
        summary="This server's live state: rooms, media workers, recordings, jobs, webhooks",
        tag="status",
        roles=roles(Role.ADMIN),
        response=StatusOut,
    )
    async def status(request: web.Request, call: Call) -> web.StreamResponse:
        return json_ok(await collect_status(request.app))
