"""Who may open what: every page and every API route, for every role.

- Pages: each page path, opened by each role's account, answers 200 when the role
  is admitted and the 403 page otherwise (which names no meeting, no unit
  link); not signed in, every page sends to ``/login?next=<the path>``.
- API: every route the OpenAPI document gives roles to ("Roles: ..."), called
  by each account whose role is not among them, answers 403 ``forbidden``
  before it reads its body or looks up its object, and writes nothing.
- A clerk cannot moderate: it gets no join link (so no room), its pages have no
  moderation, and the chair's controls are not on its pages either.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import func, select

from conference.models import Account, AuditEntry, Invitation, Meeting, Role, Unit
from tests.conftest import ACCOUNTS, cookie_for
from tests.recordings.recording_fixtures import add_recording
from web.appkeys import CONFIG

TITLE = "Hội nghị giao ban trực tuyến quý IV — UBND tỉnh Quảng Bình"
ROLE_OF = {username: role for username, (role, _) in ACCOUNTS.items()}
SCHEDULERS = {Role.SECRETARIAT, Role.ADMIN}
READERS = {Role.CLERK, Role.ADMIN, Role.CHAIR}

# Each page, and the roles it admits; {m} is a meeting chaired by QB (the chair
# account's unit), {r} one of its recordings.
PAGES: list[tuple[str, set[Role]]] = [
    ("/meetings", SCHEDULERS),
    ("/meetings/new", SCHEDULERS),
    ("/meetings/{m}/edit", SCHEDULERS),
    ("/meetings/{m}/invitations", SCHEDULERS),
    ("/today", {Role.OPERATOR, Role.CHAIR, Role.ADMIN}),
    ("/archive", READERS),
    ("/archive/meetings/{m}", READERS),
    ("/archive/meetings/{m}/print", READERS),
    ("/recordings/{r}", READERS),
    ("/admin/status", {Role.ADMIN}),
    ("/admin/units", {Role.ADMIN}),
    ("/admin/accounts", {Role.ADMIN}),
    ("/admin/webhooks", {Role.ADMIN}),
    ("/admin/retention", {Role.ADMIN}),
]


@pytest.fixture
async def objects(api: Any) -> dict[str, int]:
    start = datetime.now(UTC) + timedelta(days=1)
    created = await api.call(
        "POST",
        "/api/meetings",
        json={
            "title": TITLE,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=2)).isoformat(),
            "chair_unit": "QB",
            "invited_units": ["QB-SNV", "QB-STTTT"],
            "recording": True,
        },
        expect=201,
    )
    mid = int(created["meeting"]["id"])
    rec = await add_recording(api.database, api.client.app[CONFIG].data_dir, mid, title=TITLE)
    return {"m": mid, "r": int(rec.id)}


def fill(path: str, objects: dict[str, int]) -> str:
    return path.format(**objects)


@pytest.mark.parametrize("username", sorted(ACCOUNTS))
async def test_each_role_opens_its_pages_and_gets_403_on_the_others(
    api: Any, objects: dict[str, int], username: str
) -> None:
    headers = await cookie_for(api, username)
    role = ROLE_OF[username]
    for template, admitted in PAGES:
        path = fill(template, objects)
        response = await api.client.get(path, headers=headers, allow_redirects=False)
        html = await response.text()
        if role in admitted:
            assert response.status == 200, (username, path, response.status)
            continue
        assert response.status == 403, (username, path, response.status)
        assert 'class="forbidden' in html or "<h1>" in html, (username, path)
        # The refusal leaks nothing of what the page would have shown.
        assert TITLE not in html, (username, path)
        assert "/join/" not in html, (username, path)
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_every_page_sends_a_stranger_to_the_login_and_back(
    api: Any, objects: dict[str, int]
) -> None:
    for template, _ in PAGES:
        path = fill(template, objects)
        response = await api.client.get(path, allow_redirects=False)
        assert response.status == 302, path
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login", path
        assert parse_qs(location.query)["next"] == [path]


# --- the API: every route with roles, for every role it does not admit ------------------

_ROLES_LINE = re.compile(r"Roles: ([a-z, ]+)")
_VALUES = {
    "unit": "QB-SNV",
    "code": "QB-SNV",
    "name": "t00.webm",
}


async def guarded_routes(api: Any) -> list[tuple[str, str, set[Role]]]:
    doc = await api.call("GET", "/api/openapi.json", as_user=None, expect=200)
    routes = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            m = _ROLES_LINE.search(op.get("description", ""))
            if m:
                admitted = {Role(r.strip()) for r in m.group(1).split(",")}
                routes.append((method.upper(), path, admitted))
    return routes


def concrete(path: str, objects: dict[str, int]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _VALUES:
            return _VALUES[name]
        if "recording" in name:
            return str(objects["r"])
        return str(objects["m"])  # meeting ids; other ids need not exist to be refused

    return re.sub(r"\{([a-z_]+)\}", value, path)


async def counts(api: Any) -> list[int]:
    out = []
    async with api.database.read() as session:
        for model in (Meeting, Invitation, Unit, Account, AuditEntry):
            out.append(int((await session.exec(select(func.count()).select_from(model))).one()))
    return out


async def test_every_guarded_route_refuses_the_roles_it_does_not_admit(
    api: Any, objects: dict[str, int]
) -> None:
    routes = await guarded_routes(api)
    # The document must list the routes this test is about, or it proves nothing.
    paths = {path for _, path, _ in routes}
    for expected in ("/api/meetings", "/api/accounts", "/api/units/import", "/api/status"):
        assert any(p.startswith(expected) for p in paths), expected
    before = await counts(api)
    refused = 0
    for method, path, admitted in routes:
        url = concrete(path, objects)
        for username, role in ROLE_OF.items():
            if role in admitted:
                continue
            # A body that would be valid enough to do harm if the role check were missing.
            body = {"title": "x", "reason": "x", "units": ["QB-SNV"]} if method != "GET" else None
            response = await api.client.request(method, url, json=body, headers=api.auth(username))
            assert response.status == 403, (method, url, username, await response.text())
            payload = await response.json()
            assert payload["error"]["code"] == "forbidden", (method, url, username, payload)
            refused += 1
    assert refused > 50, refused
    assert await counts(api) == before


# --- a clerk cannot moderate ------------------------------------------------------------


async def test_a_clerk_gets_no_join_link_and_no_room_controls(
    api: Any, objects: dict[str, int]
) -> None:
    mid = objects["m"]
    # The invitations list shows the clerk who was invited, never the links.
    body = await api.call("GET", f"/api/meetings/{mid}/invitations", as_user="vanthu", expect=200)
    assert body["invitations"]
    assert all(inv.get("join_url") is None for inv in body["invitations"])
    # Schedulers do get them: the test above is not vacuous.
    body = await api.call("GET", f"/api/meetings/{mid}/invitations", as_user="thuky", expect=200)
    assert all(inv.get("join_url") for inv in body["invitations"])
    # Its pages have no moderation: no join link, no chair controls.
    headers = await cookie_for(api, "vanthu")
    response = await api.client.get(f"/archive/meetings/{mid}", headers=headers)
    html = await response.text()
    assert response.status == 200
    assert "/join/" not in html
    for control in ('id="btn-end"', 'id="btn-mute-all"', 'id="rollcall-start"'):
        assert control not in html
    # And it cannot cancel, reschedule, revoke or re-issue.
    for action in (
        "cancel",
        "reschedule",
        "invitations/QB-SNV/revoke",
        "invitations/QB-SNV/reissue",
    ):
        err = await api.call(
            "POST", f"/api/meetings/{mid}/{action}", as_user="vanthu", json={}, expect=403
        )
        assert err["error"]["code"] == "forbidden"
