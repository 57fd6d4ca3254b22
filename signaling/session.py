"""The WebSocket transport: one owner task per connection (aiohttp, RFC 6455).

The handler's task reads frames, parses them, checks rate limits and hands
messages to the room's owner. Frames to the client are written by whoever
delivers them (the room's owner) straight into the connection's transport
buffer, serialised once per broadcast; a client whose buffer grows past a bound,
or stays unread for longer than the send timeout, is dropped (4008) instead of
stalling its room. Errors are classified here, once: ``RequestRefused`` -> an
``error`` message, ``ProtocolViolation`` -> close with its code, anything
else -> logged, close 1011.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from websockets.frames import Frame, Opcode

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


@dataclass(frozen=True, slots=True)
class SessionSettings:
    # Bytes a client may leave unread before it is dropped as too slow.
    max_buffered_bytes: int = 1 << 20
    # How long a client may leave data unread before it is dropped as too slow.
    send_timeout: float = 5.0
    join_timeout: float = 10.0
    # Origins allowed besides the server's own (scheme://host[:port]).
    extra_origins: tuple[str, ...] = ()
    max_refused_in_a_row: int = 200


@functools.lru_cache(maxsize=16)
def text_frame(text: str) -> bytes:
    """An unmasked text frame (RFC 6455 §5.2: servers do not mask).

    Cached: a broadcast hands the same string to every recipient, so the frame
    is built once per broadcast, not once per participant.
    """
    return Frame(Opcode.TEXT, text.encode("utf-8")).serialize(mask=False)


class Session:
    """One WebSocket connection; also the ``Peer`` its room writes to."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        manager: RoomManager,
        db: Database,
        links: JoinLinks,
        settings: SessionSettings,
        remote: str | None,
    ) -> None:
        self.ws = ws
        self.transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self.manager = manager
        self.db = db
        self.links = links
        self.settings = settings
        self.remote = remote
        self.runner: RoomRunner | None = None
        self.participant: str | None = None
        self.limits = ConnectionLimits()
        self._closing = False
        self._backlog_since: float | None = None
        self._close_task: asyncio.Task[None] | None = None

    # --- Peer: called by the room's owner (and by this session) -----------------

    def deliver(self, text: str) -> None:
        self.deliver_frame(text_frame(text))

    def deliver_frame(self, frame: bytes) -> None:
        """Write one serialised frame now; never waits, never stalls the caller."""
        transport = self.transport
        if self._closing or transport is None or transport.is_closing():
            return
        buffered = transport.get_write_buffer_size()
        now = time.monotonic()
        if buffered == 0:
            self._backlog_since = None
        elif self._backlog_since is None:
            self._backlog_since = now
        too_long = (
            self._backlog_since is not None
            and now - self._backlog_since > self.settings.send_timeout
        )
        if buffered > self.settings.max_buffered_bytes or too_long:
            log.warning("participant %s is not reading; dropping it", self.participant)
            self.close(4008, "too slow: messages were not read")
            return
        transport.write(frame)

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._close_task = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            async with asyncio.timeout(self.settings.send_timeout):
                await self.ws.close(code=code, message=reason.encode()[:120])
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    # --- the owner task -----------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._read()
        except ProtocolViolation as e:
            # Written after any error message already sent, so the client reads why.
            self.close(e.close_code, e.message)
        except Exception:
            log.exception("session %s failed", self.participant)
            self.close(1011, "internal error")
        finally:
            if self.runner is not None and self.participant is not None:
                self.runner.disconnected(self, self.participant)
            if self._close_task is None:
                self.close(1000, "")
            if self._close_task is not None:
                await self._close_task

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
        # One deadline from the connection's opening: messages other than join do not extend it.
        join_deadline = time.monotonic() + self.settings.join_timeout
        while not self.ws.closed:
            timeout = None
            if self.participant is None:
                timeout = max(join_deadline - time.monotonic(), 0.0)
            try:
                msg = await self.ws.receive(timeout=timeout)
            except TimeoutError as e:
                late = RequestRefused("not_joined", "join within the time allowed")
                self._error(late, None)
                raise ProtocolViolation(late.code, late.message, 1008) from e
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
        # No permessage-deflate (RFC 7692): its zlib state costs ~300 KiB per connection,
        # more than everything else a participant holds, for frames that are small JSON.
        # aiohttp refuses a frame whose size equals max_msg_size; the protocol allows 256 KiB.
        ws = web.WebSocketResponse(
            max_msg_size=m.MAX_FRAME_BYTES + 1, heartbeat=20.0, autoping=True, compress=False
        )
        await ws.prepare(request)
        await Session(ws, request.transport, manager, db, links, settings, request.remote).run()
        return ws

    return handle
