"""Webhook subscriptions and their delivery log (administrators only).

The secret a receiver checks signatures with is made here and shown once, in
the answer to the create; no other answer carries it.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from conference.errors import NotFound
from conference.models import DeliveryStatus, Role
from recordings import webhooks as webhook_service
from recordings.webhooks import (
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhookUpdate,
)

from .api import Api, Call, QueryParam, json_ok, roles
from .appkeys import DATABASE, WEBHOOKS
from .params import enum_list_param, int_param, row_id

__all__ = ["DeliveryPageOut", "WebhookListOut", "add_webhook_routes"]

_ADMIN = roles(Role.ADMIN)
# No ``\d+`` in the pattern: a non-number is this API's 404, not the router's.
_ID = "{webhook_id}"


class WebhookListOut(BaseModel):
    items: list[WebhookPublic]


class DeliveryPageOut(BaseModel):
    items: list[DeliveryPublic]
    total: int
    limit: int
    offset: int


def _number(request: web.Request, name: str, what: str) -> int:
    text = request.match_info[name]
    value = row_id(text)
    if value is None:
        raise NotFound(f"no {what} with id {text!r}", code=f"unknown_{what}")
    return value


def _webhook_id(request: web.Request) -> int:
    return _number(request, "webhook_id", "webhook")


def add_webhook_routes(api: Api) -> None:
    @api.route(
        "POST",
        "/api/webhooks",
        summary="Subscribe a URL to events; the answer holds the signing secret, once",
        tag="webhooks",
        roles=_ADMIN,
        body=WebhookCreate,
        response=WebhookCreated,
        status=201,
        errors=(422,),
    )
    async def create(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            created = await webhook_service.create_subscription(session, call.who, call.body)
        return json_ok(created, status=201)

    @api.route(
        "GET",
        "/api/webhooks",
        summary="List webhook subscriptions (without secrets)",
        tag="webhooks",
        roles=_ADMIN,
        response=WebhookListOut,
    )
    async def list_webhooks(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].read() as session:
            items = await webhook_service.list_subscriptions(session)
        return json_ok(WebhookListOut(items=items))

    @api.route(
        "GET",
        f"/api/webhooks/{_ID}",
        summary="One webhook subscription (without its secret)",
        tag="webhooks",
        roles=_ADMIN,
        response=WebhookPublic,
        errors=(404,),
    )
    async def get(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].read() as session:
            sub = await webhook_service.get_subscription(session, _webhook_id(request))
            return json_ok(webhook_service.to_public(sub))

    @api.route(
        "PATCH",
        f"/api/webhooks/{_ID}",
        summary="Change a subscription's URL, events, or active flag",
        tag="webhooks",
        roles=_ADMIN,
        body=WebhookUpdate,
        response=WebhookPublic,
        errors=(404, 422),
    )
    async def update(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            sub = await webhook_service.update_subscription(
                session, call.who, _webhook_id(request), call.body
            )
        # Reactivated: its pending deliveries are due again.
        request.app[WEBHOOKS].wake()
        return json_ok(sub)

    @api.route(
        "DELETE",
        f"/api/webhooks/{_ID}",
        summary="Delete a subscription and its delivery log",
        tag="webhooks",
        roles=_ADMIN,
        status=204,
        errors=(404,),
    )
    async def delete(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            await webhook_service.delete_subscription(session, call.who, _webhook_id(request))
        return web.Response(status=204)

    @api.route(
        "GET",
        f"/api/webhooks/{_ID}/deliveries",
        summary="A subscription's deliveries, newest first",
        tag="webhooks",
        roles=_ADMIN,
        response=DeliveryPageOut,
        query=[
            QueryParam("status", "comma-separated: pending, delivered, given_up"),
            QueryParam("limit", "page size, 1 to 1000 (default 100)", {"type": "integer"}),
            QueryParam("offset", "rows to skip", {"type": "integer"}),
        ],
        errors=(404, 422),
    )
    async def deliveries(request: web.Request, call: Call) -> web.StreamResponse:
        webhook_id = _webhook_id(request)
        statuses = enum_list_param(request, "status", DeliveryStatus)
        limit = int_param(request, "limit", default=100, low=1, high=1000)
        offset = int_param(request, "offset", default=0, low=0, high=10_000_000)
        async with request.app[DATABASE].read() as session:
            page = await webhook_service.list_deliveries(
                session, webhook_id, statuses=statuses, limit=limit, offset=offset
            )
        return json_ok(
            DeliveryPageOut(
                items=page.items, total=page.total, limit=page.limit, offset=page.offset
            )
        )

    @api.route(
        "POST",
        f"/api/webhooks/{_ID}/deliveries/{{delivery_id}}/redeliver",
        summary="Send a delivery again now (its attempts so far are kept)",
        tag="webhooks",
        roles=_ADMIN,
        response=DeliveryPublic,
        errors=(404,),
    )
    async def redeliver(request: web.Request, call: Call) -> web.StreamResponse:
        webhook_id = _webhook_id(request)
        delivery_id = _number(request, "delivery_id", "delivery")
        async with request.app[DATABASE].write() as session:
            delivery = await webhook_service.redeliver(session, call.who, webhook_id, delivery_id)
        request.app[WEBHOOKS].wake()
        return json_ok(delivery)
