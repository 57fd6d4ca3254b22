"""The application factory: ``create_app(config)`` wires the packages into one aiohttp app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from conference.config import Config
from conference.db import Database
from conference.keys import load_or_create_keyring
from conference.links import JoinLinks
from conference.migrate import current_revision, head_revision, upgrade
from conference.throttle import LoginThrottle
from conference.tokens import TokenService
from recordings.jobs import CompositeJobs
from recordings.service import RecorderSettings, RecordingService
from recordings.storage import LocalStorage
from recordings.webhooks import Webhooks, WebhookSettings
from signaling.bus import InProcessBus
from signaling.ice import IceServers
from signaling.media import MediaEngine, NoMedia
from signaling.rooms import RoomManager, RoomSettings
from signaling.session import SessionSettings, websocket_handler

from .api import Api
from .api_admin import add_admin_routes
from .api_attendance import add_attendance_routes
from .api_auth import add_auth_routes
from .api_meetings import add_meeting_routes
from .api_recordings import add_recording_routes
from .api_retention import add_retention_routes
from .api_status import add_status_routes
from .api_units import add_unit_routes
from .api_webhooks import add_webhook_routes
from .appkeys import (
    BUS,
    COMPOSITES,
    CONFIG,
    DATABASE,
    KEYRING,
    LINKS,
    MEDIA,
    RECORDING_STORAGE,
    RECORDINGS,
    ROOMS,
    SESSIONS,
    TOKENS,
    WEBHOOKS,
)
from .errors import error_middleware
from .pages import add_page_routes

__all__ = ["SchemaOutOfDate", "create_app", "prepare_database"]

log = logging.getLogger(__name__)


class SchemaOutOfDate(RuntimeError):
    """A PostgreSQL schema behind the code: run ``hoinghi db upgrade``."""


async def prepare_database(db: Database) -> None:
    """SQLite is upgraded in place; a shared PostgreSQL must be upgraded on purpose."""
    if db.is_sqlite:
        await upgrade(db)
        return
    current, head = await current_revision(db), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database schema is at {current or 'nothing'}, the code needs {head}: "
            "run `hoinghi db upgrade`"
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    # Join links carry tokens in the path: never leak them in a Referer.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_app(config: Config) -> web.Application:
    """Build the application for ``config``; nothing is opened until it starts."""
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    app = web.Application(
        middlewares=[security_headers, error_middleware],
        client_max_size=config.max_body_bytes,
    )
    keyring = load_or_create_keyring(config.data_dir)
    tokens = TokenService(keyring, config.issuer)
    app[CONFIG] = config
    app[KEYRING] = keyring
    app[TOKENS] = tokens
    app[LINKS] = JoinLinks(
        tokens=tokens,
        public_url=config.effective_public_url,
        lobby_minutes=config.lobby_minutes,
        grace_minutes=config.grace_minutes,
    )
    app[DATABASE] = Database(config.effective_database_url)
    app[BUS] = InProcessBus()
    app[MEDIA] = _media_engine(config)
    app[ROOMS] = RoomManager(
        app[DATABASE],
        app[BUS],
        app[MEDIA],
        RoomSettings(
            reconnect_grace=config.reconnect_grace_seconds,
            heartbeat_interval=config.heartbeat_seconds,
            end_grace=config.grace_minutes * 60,
            ice=IceServers.from_settings(
                config.stun_urls, config.turn_urls, config.turn_secret, config.turn_ttl_seconds
            ),
            last_n=config.last_n,
        ),
    )
    app[SESSIONS] = SessionSettings()
    app[RECORDING_STORAGE] = LocalStorage(config.data_dir / "recordings")
    app[RECORDINGS] = RecordingService(
        app[DATABASE],
        app[RECORDING_STORAGE],
        app[ROOMS],
        app[BUS],
        RecorderSettings(
            enabled=config.media != "none",
            media_address=config.media_address,
            command=config.recording_command,
            command_timeout=config.recording_command_timeout_seconds,
            retention_days=config.recording_retention_days,
            log_level=config.log_level,
        ),
    )
    app[COMPOSITES] = CompositeJobs(app[DATABASE], app[RECORDING_STORAGE], app[BUS])
    app[WEBHOOKS] = Webhooks(app[DATABASE], WebhookSettings.from_config(config))
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_media)
    app.cleanup_ctx.append(_rooms)
    app.cleanup_ctx.append(_recordings)
    app.router.add_get(
        "/ws",
        websocket_handler(lambda r: (r.app[ROOMS], r.app[DATABASE], r.app[LINKS], r.app[SESSIONS])),
    )

    api = Api()
    add_admin_routes(api)
    add_auth_routes(api, LoginThrottle())
    add_unit_routes(api)
    add_meeting_routes(api)
    add_attendance_routes(api)
    add_recording_routes(api)
    add_webhook_routes(api)
    add_retention_routes(api)
    add_status_routes(api)
    api.install(app)
    add_page_routes(app)
    return app


def _media_engine(config: Config) -> MediaEngine:
    if config.media == "none":
        return NoMedia()
    from signaling.sfu.engine import EngineSettings, SfuEngine

    return SfuEngine(
        EngineSettings(
            workers=config.effective_media_workers,
            announce=config.media_address or None,
            ports=config.media_ports,
            last_n=config.last_n,
            log_level=config.log_level,
        )
    )


async def _media(app: web.Application) -> AsyncIterator[None]:
    """Media workers start before rooms open and stop after they close."""
    engine = app[MEDIA]
    await engine.start()
    yield
    await engine.close()


async def _rooms(app: web.Application) -> AsyncIterator[None]:
    """Close what a crash left open before any room opens; on shutdown, close the sockets."""
    await app[ROOMS].recover()
    yield
    await app[ROOMS].close()


async def _recordings(app: web.Application) -> AsyncIterator[None]:
    """After rooms recover: finalise recordings a crash left open, then follow rooms.
    On shutdown, before rooms close: recorders stop and their files are finalised."""
    await app[RECORDINGS].start()
    await app[COMPOSITES].start()
    yield
    await app[COMPOSITES].close()
    await app[RECORDINGS].close()


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    """Between the database and the rooms: pending deliveries resume once the schema
    is ready, and events rooms publish while they close are still enqueued."""
    webhooks = app[WEBHOOKS]
    await webhooks.follow(app[BUS])
    await webhooks.start()
    yield
    await webhooks.close()


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = app[DATABASE]
    await prepare_database(db)
    log.info("database ready (%s)", db.dialect)
    yield
    await db.close()
