"""A headless participant on the ``websockets`` library: for tests, the load
generator, the recorder and unattended room PCs; and ``hoinghi join LINK``.

Usage::

    async with Client.connect(ws_url) as client:
        welcome = await client.join(token, display_name="Phòng họp Sở TT&TT")
        await client.request("chat", text="Xin chào", to="all")
        async for event in client.events():
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection

from .messages import PROTOCOL_VERSION

__all__ = ["Client", "JoinRefused", "ServerError", "join_link_parts"]


class ServerError(Exception):
    """The server answered a request with ``error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class JoinRefused(ServerError):
    pass


@dataclass(frozen=True, slots=True)
class LinkParts:
    ws_url: str
    token: str


def join_link_parts(link: str) -> LinkParts:
    """``https://host/join/<token>`` -> ``wss://host/ws`` and the token."""
    parts = urlsplit(link)
    path = parts.path.rstrip("/")
    if "/join/" not in path:
        raise ValueError(f"not a join link: {link}")
    base, token = path.rsplit("/join/", 1)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme)
    if scheme is None or not token:
        raise ValueError(f"not a join link: {link}")
    return LinkParts(urlunsplit((scheme, parts.netloc, f"{base}/ws", "", "")), token)


class Client:
    """One signaling connection. Events not answering a request go to :meth:`events`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self.participant: str | None = None
        self.resume_token: str | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, ws_url: str, **kwargs: Any) -> AsyncIterator[Client]:
        ws = await websockets.connect(ws_url, max_size=1 << 20, **kwargs)
        client = cls(ws)
        try:
            yield client
        finally:
            await client.close()

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                rid = message.get("id") or message.get("request_id")
                future = self._pending.pop(rid, None) if isinstance(rid, str) else None
                if future is not None and not future.done():
                    future.set_result(message)
                else:
                    self._events.put_nowait(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason or ""
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(
                        ConnectionError(f"closed {self.close_code} {self.close_reason}")
                    )
            self._events.put_nowait(None)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message, ensure_ascii=False))

    async def request(self, type_: str, within: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send a message with an ``id`` and wait for the answer carrying it.

        Raises:
            ServerError: the answer was an ``error``.
        """
        rid = str(next(self._ids))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        await self.send({"type": type_, "id": rid, **fields})
        answer = await asyncio.wait_for(future, within)
        if answer.get("type") == "error":
            raise ServerError(answer["code"], answer.get("message", ""))
        return answer

    async def join(
        self, token: str, *, display_name: str | None = None, client: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"token": token, "protocol": PROTOCOL_VERSION}
        if display_name:
            fields["display_name"] = display_name
        fields["client"] = client or {"app": "hoinghi-python"}
        try:
            welcome = await self.request("join", **fields)
        except ServerError as e:
            raise JoinRefused(e.code, e.message) from e
        self.participant = welcome["participant"]
        self.resume_token = welcome["resume_token"]
        return welcome

    async def resume(self, resume_token: str) -> dict[str, Any]:
        try:
            welcome = await self.request(
                "resume", resume_token=resume_token, protocol=PROTOCOL_VERSION
            )
        except ServerError as e:
            raise JoinRefused(e.code, e.message) from e
        self.participant = welcome["participant"]
        self.resume_token = welcome["resume_token"]
        return welcome

    async def next_event(self, within: float = 10.0) -> dict[str, Any] | None:
        """The next message that answers no request; ``None`` once the connection closed."""
        return await asyncio.wait_for(self._events.get(), within)

    async def wait_for(self, type_: str, within: float = 10.0, **match: Any) -> dict[str, Any]:
        """Skip events until one of ``type_`` whose fields equal ``match``."""
        async with asyncio.timeout(within):
            while True:
                event = await self._events.get()
                if event is None:
                    raise ConnectionError(f"closed {self.close_code} {self.close_reason}")
                if event.get("type") == type_ and all(event.get(k) == v for k, v in match.items()):
                    return event

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event
