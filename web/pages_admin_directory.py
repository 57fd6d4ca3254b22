"""Administration, the directory: the unit tree (with CSV import) and accounts with
their roles. Pages for administrators only; changes go through the JSON API.

``/admin/units`` shows the tree (searched without case or tone marks, the way
people type on a phone), the counts per kind, and forms to add, change and
delete a unit and to import a CSV file; ``/admin/units.csv`` downloads the units
in the import's own columns, so a file can be exported, edited in Excel and
imported back. ``/admin/accounts`` lists accounts (filtered by role) with forms
to create one, change its roles, unit and name, deactivate it and reset its
password.

Pages only read (GET): the forms are sent by web/static/admin_units.js and
admin_accounts.js to the units and accounts APIs, which check the role again
and write the audit trail.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from conference import accounts as account_service
from conference import units as unit_service
from conference.models import AccountPublic, Role, UnitKind
from conference.slugs import fold

from .appkeys import DATABASE
from .i18n import N_, Language
from .pages_frame import json_for_script, page_actor, page_language, render

__all__ = ["KIND_TEXT", "ROLE_NAMES", "add_directory_pages"]

KIND_TEXT = {
    UnitKind.CENTRAL: N_("Central office"),
    UnitKind.PROVINCE: N_("Province"),
    UnitKind.DEPARTMENT: N_("Department"),
    UnitKind.DISTRICT: N_("District"),
    UnitKind.COMMUNE: N_("Commune"),
}

ROLE_NAMES = {
    Role.ADMIN: N_("Administrator"),
    Role.SECRETARIAT: N_("Secretariat"),
    Role.CLERK: N_("Clerk"),
    Role.OPERATOR: N_("Unit operator"),
    Role.CHAIR: N_("Chair"),
}

_Q_LIMIT = 200


def _kind_options(language: Language) -> list[tuple[str, str]]:
    return [(kind.value, language.gettext(text)) for kind, text in KIND_TEXT.items()]


def _role_options(language: Language) -> list[tuple[str, str]]:
    return [(role.value, language.gettext(text)) for role, text in ROLE_NAMES.items()]


def _flatten(tree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every unit in tree order with its depth and parent, for the selects and scripts."""
    out: list[dict[str, Any]] = []

    def walk(nodes: list[dict[str, Any]], depth: int, parent: str | None) -> None:
        for node in nodes:
            out.append(
                {
                    "code": node["code"],
                    "name": node["name"],
                    "kind": node["kind"],
                    "parent": parent,
                    "depth": depth,
                    "indent": "\u00a0\u00a0" * depth,
                }
            )
            walk(node["children"], depth + 1, node["code"])

    walk(tree, 0, None)
    return out


def _search(tree: list[dict[str, Any]], needle: str, *, keep: bool = False) -> list[dict[str, Any]]:
    """The units whose code or name holds ``needle`` (folded), with their ancestors,
    so each match is seen where it sits, and everything below them (a district
    found shows its communes); ``match`` marks the hits."""
    out: list[dict[str, Any]] = []
    for node in tree:
        hit = needle in fold(node["code"]) or needle in fold(node["name"])
        children = _search(node["children"], needle, keep=keep or hit)
        if keep or hit or children:
            out.append({**node, "children": children, "match": hit})
    return out


def _count_matches(tree: list[dict[str, Any]]) -> int:
    return sum(int(n.get("match", False)) + _count_matches(n["children"]) for n in tree)


def _annotate(tree: list[dict[str, Any]], language: Language) -> None:
    """Add each node's kind in the page's language (the tree itself holds the value)."""
    for node in tree:
        node.setdefault("match", False)
        node["kind_text"] = language.gettext(KIND_TEXT[UnitKind(node["kind"])])
        _annotate(node["children"], language)


async def units_page(request: web.Request) -> web.StreamResponse:
    """``/admin/units``: the unit tree, searched with ``q``; counts per kind; the forms."""
    actor = await page_actor(request, Role.ADMIN)
    language = page_language(request)
    q = request.query.get("q", "").strip()[:_Q_LIMIT]
    async with request.app[DATABASE].read() as session:
        full = await unit_service.unit_tree(session)
    units = _flatten(full)
    counts = Counter(u["kind"] for u in units)
    tree = _search(full, fold(q)) if q else full
    _annotate(tree, language)
    data = {"units": [{k: u[k] for k in ("code", "name", "kind", "parent")} for u in units]}
    return render(
        request,
        language,
        "admin_units.html",
        actor=actor,
        admin_tab="/admin/units",
        q=q,
        tree=tree,
        matches=_count_matches(tree) if q else len(units),
        total=len(units),
        counts=[
            (k.value, language.gettext(t), counts.get(k.value, 0)) for k, t in KIND_TEXT.items()
        ],
        kinds=_kind_options(language),
        units=units,
        page_json=json_for_script(data),
    )


async def units_csv(request: web.Request) -> web.StreamResponse:
    """``/admin/units.csv``: every unit in the import's columns (UTF-8 with a BOM, so
    Excel shows Vietnamese), to edit and import back or to start a new file from."""
    await page_actor(request, Role.ADMIN)
    async with request.app[DATABASE].read() as session:
        text = await unit_service.units_csv(session)
    response = web.Response(body=text.encode("utf-8"), content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="hoinghi-units.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _account_row(
    language: Language, account: AccountPublic, names: dict[str, str], self_id: int | None
) -> dict[str, Any]:
    return {
        "id": account.id,
        "username": account.username,
        "display_name": account.display_name,
        "unit": account.unit or "",
        "unit_name": names.get(account.unit or "", ""),
        "roles": [r.value for r in account.roles],
        "role_texts": [language.gettext(ROLE_NAMES[r]) for r in account.roles],
        "active": account.active,
        "is_self": account.id == self_id,
    }


async def accounts_page(request: web.Request) -> web.StreamResponse:
    """``/admin/accounts``: accounts (only those of ``role`` when given) and the forms."""
    actor = await page_actor(request, Role.ADMIN)
    language = page_language(request)
    role_text = request.query.get("role", "")
    role = Role(role_text) if role_text in set(Role) else None
    async with request.app[DATABASE].read() as session:
        accounts = await account_service.list_accounts(session, role=role)
        units = _flatten(await unit_service.unit_tree(session))
    names = {u["code"]: u["name"] for u in units}
    rows = [_account_row(language, a, names, actor.account_id) for a in accounts]
    data = {
        "accounts": [
            {k: r[k] for k in ("id", "username", "display_name", "unit", "roles", "active")}
            for r in rows
        ],
        "self_id": actor.account_id,
    }
    return render(
        request,
        language,
        "admin_accounts.html",
        actor=actor,
        admin_tab="/admin/accounts",
        role_filter=role.value if role else "",
        roles=_role_options(language),
        rows=rows,
        units=units,
        page_json=json_for_script(data),
    )


def add_directory_pages(app: web.Application) -> None:
    """``/admin/units``, ``/admin/units.csv`` and ``/admin/accounts``."""
    app.router.add_get("/admin/units", units_page)
    app.router.add_get("/admin/units.csv", units_csv)
    app.router.add_get("/admin/accounts", accounts_page)
