"""Units: list, tree, read, create, update, delete, CSV import."""

from __future__ import annotations

from aiohttp import web

from conference import units as unit_service
from conference.models import Role, UnitCreate, UnitKind, UnitPublic, UnitUpdate

from .api import SIGNED_IN, Api, Call, QueryParam, json_ok, read_text, roles
from .appkeys import DATABASE
from .errors import error_response
from .params import enum_list_param, str_param
from .schemas import ImportOut, UnitListOut, UnitTreeOut

__all__ = ["add_unit_routes"]

_ADMIN = roles(Role.ADMIN)


def add_unit_routes(api: Api) -> None:
    @api.route(
        "GET",
        "/api/units",
        summary="List units",
        tag="units",
        roles=SIGNED_IN,
        response=UnitListOut,
        query=[
            QueryParam("kind", "comma-separated: central, province, department, district, commune"),
            QueryParam("q", "text to find in code or name"),
        ],
    )
    async def list_units(request: web.Request, call: Call) -> web.StreamResponse:
        kinds = enum_list_param(request, "kind", UnitKind)
        async with request.app[DATABASE].read() as session:
            items = await unit_service.list_units(session, kinds=kinds, q=str_param(request, "q"))
        return json_ok(UnitListOut(items=items))

    @api.route(
        "GET",
        "/api/units/tree",
        summary="Units as a tree (parent to children)",
        tag="units",
        roles=SIGNED_IN,
        response=UnitTreeOut,
    )
    async def tree(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].read() as session:
            return json_ok(UnitTreeOut(roots=await unit_service.unit_tree(session)))

    @api.route(
        "GET",
        "/api/units/{code}",
        summary="One unit",
        tag="units",
        roles=SIGNED_IN,
        response=UnitPublic,
        errors=(404,),
    )
    async def get_unit(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].read() as session:
            unit = await unit_service.get_unit(session, request.match_info["code"])
            return json_ok(await unit_service.to_public(session, unit))

    @api.route(
        "POST",
        "/api/units",
        summary="Create a unit",
        tag="units",
        roles=_ADMIN,
        body=UnitCreate,
        response=UnitPublic,
        status=201,
        errors=(409, 422),
    )
    async def create(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            unit = await unit_service.create_unit(session, call.who, call.body)
        return json_ok(unit, status=201)

    @api.route(
        "PATCH",
        "/api/units/{code}",
        summary="Change a unit",
        tag="units",
        roles=_ADMIN,
        body=UnitUpdate,
        response=UnitPublic,
        errors=(404, 422),
    )
    async def update(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            unit = await unit_service.update_unit(
                session, call.who, request.match_info["code"], call.body
            )
        return json_ok(unit)

    @api.route(
        "DELETE",
        "/api/units/{code}",
        summary="Delete a unit nothing refers to",
        tag="units",
        roles=_ADMIN,
        status=204,
        errors=(404, 409),
    )
    async def delete(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            await unit_service.delete_unit(session, call.who, request.match_info["code"])
        return web.Response(status=204)

    @api.route(
        "POST",
        "/api/units/import",
        summary="Create or update units from CSV (code,name,kind,parent)",
        tag="units",
        roles=_ADMIN,
        response=ImportOut,
        content_type="text/csv",
        errors=(400, 413, 415, 422),
    )
    async def import_csv(request: web.Request, call: Call) -> web.StreamResponse:
        """A refused file answers 422 with every bad row in ``error.details``
        (``{line, code, message, field}``), so the page can list them all."""
        text = await read_text(request, "text/csv")
        try:
            async with request.app[DATABASE].write() as session:
                result = await unit_service.import_units_csv(session, call.who, text)
        except unit_service.CsvRejected as e:
            details = [row.as_dict() for row in e.errors]
            return error_response(422, e.code, e.message, e.field, details=details)
        return json_ok(
            ImportOut(created=result.created, updated=result.updated, unchanged=result.unchanged)
        )
