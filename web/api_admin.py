"""Health and readiness probes, the audit trail, and the OpenAPI document."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from conference import __version__
from conference.audit import list_audit
from conference.models import Role

from .api import PUBLIC, Api, Call, QueryParam, json_ok, roles
from .appkeys import DATABASE
from .errors import error_response
from .openapi import openapi_document
from .params import int_param, str_param
from .schemas import AuditListOut, HealthOut

__all__ = ["add_admin_routes"]

log = logging.getLogger(__name__)


def add_admin_routes(api: Api) -> None:
    @api.route(
        "GET",
        "/healthz",
        summary="Liveness: 200 while the process runs",
        tag="health",
        roles=PUBLIC,
        response=HealthOut,
    )
    async def healthz(request: web.Request, call: Call) -> web.StreamResponse:
        return json_ok(HealthOut(status="ok", version=__version__))

    @api.route(
        "GET",
        "/readyz",
        summary="Readiness: 200 only while the database answers",
        tag="health",
        roles=PUBLIC,
        response=HealthOut,
        errors=(503,),
    )
    async def readyz(request: web.Request, call: Call) -> web.StreamResponse:
        try:
            await request.app[DATABASE].ping()
        except Exception as e:  # any failure to answer means "not ready"
            log.warning("readiness check failed: %s", e)
            return error_response(503, "database_unavailable", "the database does not answer")
        return json_ok(HealthOut(status="ready", version=__version__))

    @api.route(
        "GET",
        "/api/audit",
        summary="The audit trail, newest first",
        tag="audit",
        roles=roles(Role.ADMIN),
        response=AuditListOut,
        query=[
            QueryParam("object_type", "unit, account, meeting"),
            QueryParam("object_id", "the object's id or code"),
            QueryParam("limit", "1 to 1000 (default 100)", {"type": "integer"}),
        ],
    )
    async def audit(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].read() as session:
            items = await list_audit(
                session,
                object_type=str_param(request, "object_type", max_length=32),
                object_id=str_param(request, "object_id", max_length=64),
                limit=int_param(request, "limit", default=100, low=1, high=1000),
            )
        return json_ok(AuditListOut(items=items))

    document: dict[str, Any] = {}

    @api.route("GET", "/api/openapi.json", summary="This document", tag="meta", roles=PUBLIC)
    async def openapi(request: web.Request, call: Call) -> web.StreamResponse:
        if not document:
            document.update(openapi_document(api.endpoints, version=__version__))
        return json_ok(document)
