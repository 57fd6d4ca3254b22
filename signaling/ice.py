"""The ICE servers handed to clients in ``welcome``: STUN, and TURN with
time-limited credentials (the TURN REST scheme coturn implements with
``use-auth-secret``): username ``<expiry unix time>:<user>``, password
``base64(HMAC-SHA1(secret, username))``. No TURN password is ever stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IceServers", "turn_rest_credentials"]


def turn_rest_credentials(secret: str, user: str, expires_at: int) -> tuple[str, str]:
    username = f"{expires_at}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class IceServers:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)
    turn_ttl_seconds: int = 24 * 3600
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(
        cls, stun: str, turn: str, secret: str | None, ttl_seconds: int
    ) -> IceServers:
        def split(urls: str) -> tuple[str, ...]:
            return tuple(u.strip() for u in urls.split(",") if u.strip())

        return cls(split(stun), split(turn), secret or None, ttl_seconds)

    def for_user(self, user: str) -> list[dict[str, Any]]:
        """RTCIceServer dictionaries (W3C WebRTC §4.2.2) for one participant."""
        servers: list[dict[str, Any]] = []
        if self.stun_urls:
            servers.append({"urls": list(self.stun_urls)})
        if self.turn_urls and self.turn_secret:
            expires = int(self.clock()) + self.turn_ttl_seconds
            username, credential = turn_rest_credentials(self.turn_secret, user, expires)
            servers.append(
                {"urls": list(self.turn_urls), "username": username, "credential": credential}
            )
        return servers
