"""A real webhook receiver for tests: an aiohttp server on 127.0.0.1 (random port).

Each path (``/hooks/<name>``) has its own behaviour and secret. Every request
is recorded with its raw body and headers, and its signature and timestamp are
checked here with ``hmac`` directly (not with the code under test), so a broken
signer shows up as ``bad_signatures``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Received", "Receiver", "wait_until"]

TIMESTAMP_TOLERANCE = 300  # seconds


async def wait_until(
    predicate: Callable[[], Any], *, within: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` (sync or async) until true, failing after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    signature_ok: bool
    timestamp_ok: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def key(self) -> str:
        return self.headers.get("Idempotency-Key", "")


@dataclass
class Behaviour:
    secret: str = ""
    # Statuses to answer, in order; after they run out, ``then``.
    script: list[int] = field(default_factory=list)
    then: int = 200
    hang: bool = False
    redirect_to: str = ""


class Receiver:
    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.received: list[Received] = []
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- set-up ------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    def expect(self, name: str, secret: str, **behaviour: Any) -> str:
        """Answer on ``/hooks/<name>`` as told, checking signatures with ``secret``."""
        self.behaviours[name] = Behaviour(secret=secret, **behaviour)
        return self.url(name)

    def set(self, name: str, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.behaviours[name], key, value)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what arrived ------------------------------------------------------------

    def at(self, name: str) -> list[Received]:
        return [r for r in self.received if r.path == f"/hooks/{name}"]

    @property
    def bad_signatures(self) -> list[Received]:
        return [r for r in self.received if not (r.signature_ok and r.timestamp_ok)]

    # -- the handler ---------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        behaviour = self.behaviours.get(name)
        body = await request.read()
        headers = dict(request.headers)
        signature_ok = timestamp_ok = False
        stamp = headers.get("Hoinghi-Timestamp", "")
        if behaviour is not None and stamp.isdigit():
            timestamp_ok = abs(time.time() - int(stamp)) <= TIMESTAMP_TOLERANCE
            expected = hmac.new(
                behaviour.secret.encode("utf-8"),
                stamp.encode("ascii") + b"." + body,
                hashlib.sha256,
            ).hexdigest()
            signature_ok = hmac.compare_digest(
                headers.get("Hoinghi-Signature", ""), f"sha256={expected}"
            )
        self.received.append(
            Received(
                path=request.path,
                headers=headers,
                body=body,
                at=time.monotonic(),
                signature_ok=signature_ok,
                timestamp_ok=timestamp_ok,
            )
        )
        if behaviour is None:
            return web.Response(status=404)
        if not (signature_ok and timestamp_ok):
            return web.Response(status=401, text="bad signature")
        if behaviour.hang:
            await self._release.wait()
            return web.Response(status=503)
        if behaviour.redirect_to:
            raise web.HTTPFound(behaviour.redirect_to)
        status = behaviour.script.pop(0) if behaviour.script else behaviour.then
        return web.Response(status=status, text="ok" if status < 300 else "no")
