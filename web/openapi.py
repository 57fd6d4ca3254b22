"""The OpenAPI 3.1 document, built from the endpoint declarations in ``api.py``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from .api import Endpoint

__all__ = ["openapi_document"]

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable"},
                "message": {"type": "string", "description": "for people"},
                "field": {"type": "string", "description": "the field at fault, if any"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}
_REASONS = {
    400: "malformed request",
    401: "not authenticated",
    403: "not allowed",
    404: "not found",
    409: "conflicts with stored state",
    413: "body too large",
    415: "wrong content type",
    422: "invalid field",
    429: "too many attempts",
    503: "not ready",
}


def _schema_ref(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)  # type: ignore[arg-type]
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi_document(endpoints: Iterable[Endpoint], *, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for ep in endpoints:
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", ep.path)
        op: dict[str, Any] = {
            "summary": ep.summary,
            "tags": [ep.tag],
            "operationId": f"{ep.tag}_{ep.handler.__name__}",
        }
        if ep.roles is None:
            op["security"] = []
        elif ep.roles:
            op["description"] = "Roles: " + ", ".join(sorted(r.value for r in ep.roles))
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", path)
        ]
        params += [
            {
                "name": q.name,
                "in": "query",
                "required": q.required,
                "description": q.description,
                "schema": q.schema,
            }
            for q in ep.query
        ]
        if params:
            op["parameters"] = params
        if ep.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": _schema_ref(ep.body, components, "validation")}
                },
            }
        elif ep.content_type == "text/csv":
            op["requestBody"] = {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        ok: dict[str, Any] = {"description": "success"}
        if ep.response is not None:
            ok["content"] = {
                "application/json": {
                    "schema": _schema_ref(ep.response, components, "serialization")
                }
            }
        elif ep.content_type == "text/calendar":
            ok["content"] = {"text/calendar": {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {str(ep.status): ok}
        codes = set(ep.errors)
        if ep.body is not None:
            codes |= {400, 413, 415, 422}
        if ep.roles is not None:
            codes |= {401} | ({403} if ep.roles else set())
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _REASONS.get(code, "error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        op["responses"] = responses
        paths.setdefault(path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hoinghi",
            "version": version,
            "description": "Scheduling API of hoinghi, the province's video conferences.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "session": {"type": "apiKey", "in": "cookie", "name": "hoinghi_session"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
