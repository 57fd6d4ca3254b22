"""The WebSocket transport: one owner task per connection (aiohttp, RFC 6455).

The handler's task reads frames, parses them, checks rate limits and hands
messages to the room's owner. A writer task, owned by it, drains a bounded
queue of outgoing frames; a client that does not read is dropped (4008)
instead of stalling its room. Errors are classified here, once:
``RequestRefused`` -> an ``error`` message, ``ProtocolViolation`` -> close
with its code, anything else -> logged, close 1011.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from conference.db import Database
from conference.errors import DomainError
from conference.invitations import verify_join_token
from conference.links import JoinLinks

from . import messages as m
from .errors import ProtocolViolation, RequestRefused
from .participant import Role
from .ratelimit import ConnectionLimits
from .rooms import Arrival, RoomManager, RoomRunner

__all__ = ["SessionSettings", "websocket_handler"]

log = logging.getLogger(__name__)

_CLOSE = object()


@dataclass(frozen=True, slots=True)
class SessionSettings:
    send_queue: int = 256
    send_timeout: float = 5.0
    join_timeout: float = 10.0
    # Origins allowed besides the server's own (scheme://host[:port]).
    extra_origins: tuple[str, ...] = ()
    max_refused_in_a_row: int = 200


class Session:
    """One WebSocket connection; also the ``Peer`` its room writes to."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        manager: RoomManager,
        db: Database,
        links: JoinLinks,
        settings: SessionSettings,
        remote: str | None,
    ) -> None:
        self.ws = ws
        self.manager = manager
        self.db = db
        self.links = links
        self.settings = settings
        self.remote = remote
        self.outbox: asyncio.Queue[Any] = asyncio.Queue(settings.send_queue)
        self.runner: RoomRunner | None = None
        self.participant: str | None = None
        self.limits = ConnectionLimits()
        self._closing = False

    # --- Peer: called by the room's owner -------------------------------------

    def deliver(self, text: str) -> None:
        if self._closing:
            return
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("participant %s is not reading; dropping it", self.participant)
            self._drop(4008, "too slow: the send queue is full")

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait((_CLOSE, code, reason))
            return
        self._drop(code, reason)

    def _drop(self, code: int, reason: str) -> None:
        self._closing = True
        asyncio.get_running_loop().create_task(self.ws.close(code=code, message=reason.encode()))

    # --- the owner task -----------------------------------------------------------

    async def run(self) -> None:
        writer = asyncio.create_task(self._write(), name="ws-writer")
        try:
            await self._read()
        except ProtocolViolation as e:
            # Queued behind any error message already on its way, so the client reads why.
            self.close(e.close_code, e.message)
        except Exception:
            log.exception("session %s failed", self.participant)
            self.close(1011, "internal error")
        finally:
            if self.runner is not None and self.participant is not None:
                self.runner.disconnected(self, self.participant)
            if not self._closing:
                self._closing = True
                with contextlib.suppress(asyncio.QueueFull):
                    self.outbox.put_nowait((_CLOSE, 1000, ""))
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(writer, timeout=self.settings.send_timeout)
            writer.cancel()
            if not self.ws.closed:
                await self.ws.close()

    async def _write(self) -> None:
        while True:
            item = await self.outbox.get()
            if isinstance(item, tuple) and item[0] is _CLOSE:
                _, code, reason = item
                await self.ws.close(code=code, message=reason.encode()[:120])
                return
            try:
                async with asyncio.timeout(self.settings.send_timeout):
                    await self.ws.send_str(item)
            except TimeoutError:
                log.warning("participant %s: send timed out; dropping it", self.participant)
                self._closing = True
                await self.ws.close(code=4008, message=b"too slow")
                return
            except ConnectionError:
                return

    def _error(self, refused: RequestRefused, request_id: str | None) -> None:
        payload: dict[str, Any] = {
            "type": "error",
            "code": refused.code,
            "message": refused.message,
        }
        if request_id is not None:
            payload["request_id"] = request_id
        self.deliver(m.dumps(payload))
        if refused.close_code is not None:
            self.close(refused.close_code, refused.message)

    async def _read(self) -> None:
        while not self.ws.closed:
            timeout = self.settings.join_timeout if self.participant is None else None
            try:
                msg = await self.ws.receive(timeout=timeout)
            except TimeoutError as e:
                raise ProtocolViolation("not_joined", "join within 10 seconds", 1008) from e
            if msg.type is WSMsgType.TEXT:
                await self._on_text(msg.data)
            elif msg.type is WSMsgType.BINARY:
                raise ProtocolViolation(
                    "bad_message", "binary frames are not part of the protocol", 1003
                )
            elif msg.type is WSMsgType.ERROR:
                exc = self.ws.exception()
                if exc is not None and "too big" in str(exc).lower():
                    raise ProtocolViolation("bad_message", "frame too large", 1009)
                return
            else:  # CLOSE, CLOSING, CLOSED
                return
            if self._closing:
                return

    async def _on_text(self, text: str) -> None:
        try:
            message = m.parse(text)
        except m.BadMessage as e:
            self._error(e, e.request_id)
            self._count_refusal()
            return
        if not self.limits.allow(message.type):
            self._error(
                RequestRefused("rate_limited", f"too many {message.type} messages"), message.id
            )
            self._count_refusal()
            return
        try:
            if self.participant is None:
                await self._arrive(message)
            elif isinstance(message, (m.Join, m.Resume)):
                raise RequestRefused("already_joined", "this connection has joined already")
            else:
                assert self.runner is not None
                self.runner.message(self, self.participant, message)
        except RequestRefused as refused:
            self._error(refused, message.id)

    def _count_refusal(self) -> None:
        if self.limits.refused_in_a_row > self.settings.max_refused_in_a_row:
            raise ProtocolViolation("rate_limited", "flooding", 1008)

    async def _arrive(self, message: m.ClientMessage) -> None:
        if isinstance(message, (m.Join, m.Resume)) and message.protocol != m.PROTOCOL_VERSION:
            self._error(
                RequestRefused(
                    "unsupported_protocol", f"this server speaks protocol {m.PROTOCOL_VERSION}"
                ),
                message.id,
            )
            raise ProtocolViolation("unsupported_protocol", "unsupported protocol version", 1002)
        if isinstance(message, m.Join):
            await self._join(message)
        elif isinstance(message, m.Resume):
            runner = self.manager.find_resume(message.resume_token)
            if runner is None:
                raise RequestRefused("resume_expired", "too late to resume; join again")
            try:
                self.participant = await runner.resume(self, message.resume_token, message.id)
            except RequestRefused:
                return  # the room sent the error already
            self.runner = runner
        else:
            raise RequestRefused("not_joined", "send join first")

    async def _join(self, message: m.Join) -> None:
        try:
            async with self.db.read() as session:
                grant = await verify_join_token(session, self.links, message.token)
        except DomainError as e:
            raise RequestRefused(e.code, e.message, close_code=4001) from e
        runner = await self.manager.runner_for(grant.meeting)
        client: dict[str, Any] = message.client.model_dump(exclude_none=True)
        if self.remote:
            client["address"] = self.remote
        arrival = Arrival(
            unit_code=grant.unit.code,
            unit_name=grant.unit.name,
            unit_id=grant.unit.id,
            role=Role(grant.invitation.role.value),
            display_name=message.display_name or grant.unit.name,
            client_info=client,
            bandwidth=message.client.bandwidth,
        )
        try:
            self.participant = await runner.join(self, arrival, message.id)
        except RequestRefused:
            return  # the room sent the error (and the close) already
        self.runner = runner


def origin_allowed(request: web.Request, public_url: str, extra: tuple[str, ...]) -> bool:
    """Browsers send ``Origin``; it must be ours. Non-browser clients send none."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    own = f"{request.scheme}://{request.host}"
    public = urlsplit(public_url)
    allowed = {own, f"{public.scheme}://{public.netloc}", *extra}
    return origin in allowed


def websocket_handler(
    get: Callable[[web.Request], tuple[RoomManager, Database, JoinLinks, SessionSettings]],
) -> Callable[[web.Request], Any]:
    """The aiohttp handler for ``/ws``; ``get`` fetches the shared objects from the app."""

    async def handle(request: web.Request) -> web.StreamResponse:
        manager, db, links, settings = get(request)
        if not origin_allowed(request, links.public_url, settings.extra_origins):
            return web.json_response(
                {"error": {"code": "origin_refused", "message": "cross-origin WebSocket refused"}},
                status=403,
            )
        ws = web.WebSocketResponse(max_msg_size=m.MAX_FRAME_BYTES, heartbeat=20.0, autoping=True)
        await ws.prepare(request)
        await Session(ws, manager, db, links, settings, request.remote).run()
        return ws

    return handle
