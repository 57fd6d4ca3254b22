"""Typed keys for the objects the application shares between handlers."""

from __future__ import annotations

from aiohttp import web

from conference.config import Config
from conference.db import Database
from conference.keys import KeyRing
from conference.links import JoinLinks
from conference.tokens import TokenService
from recordings.jobs import CompositeJobs
from recordings.service import RecordingService
from recordings.storage import Storage
from recordings.webhooks import Webhooks
from signaling.bus import InProcessBus
from signaling.media import MediaEngine
from signaling.rooms import RoomManager
from signaling.session import SessionSettings

__all__ = [
    "BUS",
    "COMPOSITES",
    "CONFIG",
    "DATABASE",
    "KEYRING",
    "LINKS",
    "MEDIA",
    "RECORDINGS",
    "RECORDING_STORAGE",
    "ROOMS",
    "SESSIONS",
    "TOKENS",
    "WEBHOOKS",
]

CONFIG = web.AppKey("config", Config)
DATABASE = web.AppKey("database", Database)
KEYRING = web.AppKey("keyring", KeyRing)
TOKENS = web.AppKey("tokens", TokenService)
LINKS = web.AppKey("links", JoinLinks)
BUS = web.AppKey("bus", InProcessBus)
MEDIA = web.AppKey("media", MediaEngine)
ROOMS = web.AppKey("rooms", RoomManager)
SESSIONS = web.AppKey("session_settings", SessionSettings)
RECORDING_STORAGE = web.AppKey("recording_storage", Storage)
RECORDINGS = web.AppKey("recordings", RecordingService)
COMPOSITES = web.AppKey("composites", CompositeJobs)
WEBHOOKS = web.AppKey("webhooks", Webhooks)
