"""Typed keys for the objects the application shares between handlers."""

from __future__ import annotations

from aiohttp import web

from conference.config import Config
from conference.db import Database
from conference.keys import KeyRing
from conference.links import JoinLinks
from conference.tokens import TokenService

__all__ = ["CONFIG", "DATABASE", "KEYRING", "LINKS", "TOKENS"]

CONFIG = web.AppKey("config", Config)
DATABASE = web.AppKey("database", Database)
KEYRING = web.AppKey("keyring", KeyRing)
TOKENS = web.AppKey("tokens", TokenService)
LINKS = web.AppKey("links", JoinLinks)
