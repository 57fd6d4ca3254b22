"""A small route registry: each endpoint declares its roles, body and answer once.

The same declaration installs the aiohttp route, checks roles, parses and
validates the JSON body, and feeds the OpenAPI document, so the document
cannot drift from what the server does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from conference.actors import Actor, require_role
from conference.models import Role

from .appkeys import CONFIG
from .auth import authenticate
from .errors import ApiError, dumps

__all__ = [
    "PUBLIC",
    "SIGNED_IN",
    "Api",
    "Call",
    "Endpoint",
    "QueryParam",
    "json_ok",
    "read_json",
    "read_text",
    "roles",
]

# ``roles=PUBLIC``: no login; ``roles=SIGNED_IN``: any account.
PUBLIC: frozenset[Role] | None = None
SIGNED_IN: frozenset[Role] = frozenset()


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(slots=True)
class Call:
    """What a handler receives beside the request."""

    actor: Actor | None
    body: Any = None

    @property
    def who(self) -> Actor:
        assert self.actor is not None, "endpoint declared PUBLIC but needs an actor"
        return self.actor


Handler = Callable[[web.Request, Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    roles: frozenset[Role] | None
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    query: tuple[QueryParam, ...]
    content_type: str
    errors: tuple[int, ...]


def json_ok(data: Any, status: int = 200) -> web.Response:
    if isinstance(data, BaseModel):
        # pydantic-core writes the JSON itself (UTF-8, Vietnamese unescaped): no dict in between.
        return web.Response(
            body=data.model_dump_json().encode("utf-8"),
            status=status,
            content_type="application/json",
            charset="utf-8",
        )
    return web.json_response(data, status=status, dumps=dumps)


async def _read_body(request: web.Request, content_type: str) -> bytes:
    limit = request.app[CONFIG].max_body_bytes
    if request.content_type != content_type:
        raise ApiError(415, "unsupported_media_type", f"send the body as {content_type}")
    too_large = ApiError(413, "body_too_large", f"the body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise too_large from e
    if len(raw) > limit:
        raise too_large
    return raw


async def read_text(request: web.Request, content_type: str) -> str:
    """The body as UTF-8 text of ``content_type``, within the size limit."""
    raw = await _read_body(request, content_type)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, "invalid_encoding", "the body must be UTF-8") from e


async def read_json(request: web.Request, model: type[BaseModel]) -> BaseModel:
    """Parse the body as JSON into ``model``, with the configured size limit.

    Raises:
        ApiError: 415 not JSON, 413 too large, 400 malformed or not an object.
        pydantic.ValidationError: the object does not fit ``model``.
    """
    raw = await _read_body(request, "application/json")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return model.model_validate(data)


class Api:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        roles: frozenset[Role] | None,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        query: Iterable[QueryParam] = (),
        content_type: str = "application/json",
        errors: Iterable[int] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    tag=tag,
                    roles=roles,
                    body=body,
                    response=response,
                    status=status,
                    query=tuple(query),
                    content_type=content_type,
                    errors=tuple(errors),
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, _wrap(endpoint))


def _wrap(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        actor = None
        if endpoint.roles is not None:
            actor = await authenticate(request)
            if endpoint.roles:
                require_role(actor, endpoint.roles)
        body = await read_json(request, endpoint.body) if endpoint.body is not None else None
        return await endpoint.handler(request, Call(actor=actor, body=body))

    handle.__name__ = endpoint.handler.__name__
    return handle


def roles(*names: Role) -> frozenset[Role]:
    return frozenset(names)
