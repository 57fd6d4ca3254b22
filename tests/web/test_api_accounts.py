"""The accounts API beyond list and create: ``PATCH /api/accounts/{id}`` (display
name, roles, unit, active), ``POST /api/accounts/{id}/password``, the role filter,
and what a change does to the account's sessions.

Admins only; an admin cannot take away their own admin role nor deactivate
themselves (409, stable codes); a deactivated account cannot sign in and its live
sessions and tokens stop working at once. Every change is audited. Both
databases (the ``api`` fixture is parametrized).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import func, select

from conference.models import Account, AuditEntry
from conference.passwords import verify_password
from tests.conftest import PASSWORD

NON_ADMINS = ["thuky", "vanthu", "vanhanh", "chutri"]
NEW_PASSWORD = "mật-khẩu-mới-đủ-dài"


# --- helpers -----------------------------------------------------------------------------


async def state(api: Any) -> tuple[list[tuple[Any, ...]], int]:
    """Every account as stored (hash included) and the number of audit entries."""
    async with api.database.read() as session:
        rows = (await session.exec(select(Account).order_by(Account.id))).all()
        audits = (await session.exec(select(func.count()).select_from(AuditEntry))).one()
    accounts = [
        (a.id, a.username, a.display_name, a.password_hash, sorted(a.roles), a.unit_id, a.active)
        for a in rows
    ]
    return accounts, int(audits)


async def account_row(api: Any, username: str) -> Account:
    async with api.database.read() as session:
        row = (await session.exec(select(Account).where(Account.username == username))).first()
    assert row is not None
    return row


async def audit_of(api: Any, username: str) -> list[dict[str, Any]]:
    body = await api.call(
        "GET",
        "/api/audit",
        params={"object_type": "account", "object_id": username},
        as_user="admin",
        expect=200,
    )
    items: list[dict[str, Any]] = body["items"]
    return items


async def login(api: Any, username: str, password: str = PASSWORD) -> Any:
    response = await api.client.post(
        "/api/auth/login", json={"username": username, "password": password}
    )
    api.client.session.cookie_jar.clear()
    return response


async def patch(api: Any, username: str, body: Any, *, expect: int, as_user: str = "admin") -> Any:
    return await api.call(
        "PATCH",
        f"/api/accounts/{api.accounts[username]}",
        as_user=as_user,
        json=body,
        expect=expect,
    )


# --- who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", NON_ADMINS)
async def test_non_admins_cannot_change_accounts_or_passwords(api: Any, username: str) -> None:
    before = await state(api)
    target = api.accounts["vanthu"]
    attempts: list[tuple[str, str, Any]] = [
        ("PATCH", f"/api/accounts/{target}", {"roles": ["admin"]}),
        ("PATCH", f"/api/accounts/{api.accounts[username]}", {"roles": ["admin"]}),  # oneself
        ("POST", f"/api/accounts/{target}/password", {"password": NEW_PASSWORD}),
    ]
    for method, path, body in attempts:
        answer = await api.call(method, path, as_user=username, json=body, expect=403)
        assert answer["error"]["code"] == "forbidden", (method, path)
    assert await state(api) == before


async def test_account_changes_need_credentials(api: Any) -> None:
    before = await state(api)
    target = api.accounts["vanthu"]
    for method, path, body in [
        ("PATCH", f"/api/accounts/{target}", {"active": False}),
        ("POST", f"/api/accounts/{target}/password", {"password": NEW_PASSWORD}),
    ]:
        answer = await api.call(method, path, as_user=None, json=body, expect=401)
        assert answer["error"]["code"] == "unauthenticated"
    assert await state(api) == before


# --- PATCH ---------------------------------------------------------------------------------------------


async def test_admin_changes_name_roles_and_unit(api: Any) -> None:
    body = await patch(
        api,
        "vanthu",
        {
            "display_name": "Đặng Thị Ánh – Văn thư 📋",
            "roles": ["chair", "clerk"],
            "unit": "QB-SYT",
        },
        expect=200,
    )
    assert body == {
        "id": api.accounts["vanthu"],
        "username": "vanthu",
        "display_name": "Đặng Thị Ánh – Văn thư 📋",
        "roles": ["chair", "clerk"],
        "unit": "QB-SYT",
        "active": True,
    }
    listed = await api.call("GET", "/api/accounts", as_user="admin", expect=200)
    assert body in listed["items"]
    row = await account_row(api, "vanthu")
    assert row.display_name.encode() == "Đặng Thị Ánh – Văn thư 📋".encode()
    (entry,) = await audit_of(api, "vanthu")
    assert entry["action"] == "account.update"
    assert entry["actor"] == "admin"
    assert entry["detail"]["changes"] == {
        "display_name": "Đặng Thị Ánh – Văn thư 📋",
        "roles": ["chair", "clerk"],
        "unit": "QB-SYT",
    }
    # The new roles hold at once, for a session that signed in before the change.
    me = await api.call("GET", "/api/me", as_user="vanthu", expect=200)
    assert me["roles"] == ["chair", "clerk"]


async def test_a_partial_change_keeps_the_rest(api: Any) -> None:
    body = await patch(api, "thuky", {"display_name": "Lê Văn Thư"}, expect=200)
    assert body["roles"] == ["secretariat"]
    assert body["unit"] == "QB-VP"
    assert body["active"] is True


async def test_unit_null_detaches_the_account(api: Any) -> None:
    body = await patch(api, "vanhanh", {"unit": None}, expect=200)
    assert body["unit"] is None
    assert (await account_row(api, "vanhanh")).unit_id is None


async def test_an_admin_may_change_their_own_name_and_add_roles(api: Any) -> None:
    body = await patch(
        api, "admin", {"display_name": "Quản trị", "roles": ["admin", "clerk"]}, expect=200
    )
    assert body["roles"] == ["admin", "clerk"]
    assert body["active"] is True


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"roles": ["clerk"]}, "self_demotion", "roles"),
        (
            {"roles": ["secretariat", "clerk"], "display_name": "Không lưu"},
            "self_demotion",
            "roles",
        ),
        ({"active": False}, "self_deactivation", "active"),
        ({"active": False, "roles": ["admin"]}, "self_deactivation", "active"),
    ],
    ids=["demote", "demote-with-name", "deactivate", "deactivate-keeping-admin"],
)
async def test_an_admin_cannot_lock_themselves_out(
    api: Any, change: dict[str, Any], code: str, field: str
) -> None:
    before = await state(api)
    body = await patch(api, "admin", change, expect=409)
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert await state(api) == before
    assert (await api.call("GET", "/api/me", as_user="admin", expect=200))["roles"] == ["admin"]


async def test_an_admin_may_demote_another_admin(api: Any) -> None:
    await patch(api, "thuky", {"roles": ["admin"]}, expect=200)
    body = await patch(api, "thuky", {"roles": ["secretariat"]}, expect=200)
    assert body["roles"] == ["secretariat"]


BAD_PATCHES: list[tuple[str, Any, int, str, str | None]] = [
    ("roles-null", {"roles": None}, 422, "invalid_field", "roles"),
    ("roles-empty", {"roles": []}, 422, "invalid_field", "roles"),
    ("unknown-role", {"roles": ["king"]}, 422, "invalid_field", "roles.0"),
    ("name-null", {"display_name": None}, 422, "invalid_field", "display_name"),
    ("name-blank", {"display_name": "   "}, 422, "invalid_field", "display_name"),
    ("name-control", {"display_name": "Tên\x00"}, 422, "invalid_field", "display_name"),
    ("active-null", {"active": None}, 422, "invalid_field", "active"),
    ("active-string", {"active": "no"}, 422, "invalid_field", "active"),
    ("unknown-field", {"username": "khac"}, 422, "unknown_field", "username"),
    ("password-here", {"password": NEW_PASSWORD}, 422, "unknown_field", "password"),
    ("unknown-unit", {"unit": "QB-KHONGCO"}, 404, "unknown_unit", None),
    ("not-an-object", ["admin"], 400, "invalid_json", None),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [b[1:] for b in BAD_PATCHES],
    ids=[b[0] for b in BAD_PATCHES],
)
async def test_bad_changes_are_refused_and_write_nothing(
    api: Any, body: Any, status: int, code: str, field: str | None
) -> None:
    before = await state(api)
    answer = await patch(api, "vanthu", body, expect=status)
    assert answer["error"]["code"] == code
    if field is not None:
        assert answer["error"]["field"] == field
    assert await state(api) == before


@pytest.mark.parametrize("account_id", ["999999", "abc", "99999999999", "-1", "١"])
async def test_an_unknown_account_is_404(api: Any, account_id: str) -> None:
    before = await state(api)
    for method, path, body in [
        ("PATCH", f"/api/accounts/{account_id}", {"active": False}),
        ("POST", f"/api/accounts/{account_id}/password", {"password": NEW_PASSWORD}),
    ]:
        answer = await api.call(method, path, as_user="admin", json=body, expect=404)
        assert answer["error"]["code"] == "unknown_account"
    assert await state(api) == before


# --- deactivation ---------------------------------------------------------------------------------


async def test_a_deactivated_account_cannot_sign_in_nor_use_its_sessions(api: Any) -> None:
    response = await login(api, "vanthu")
    assert response.status == 200
    cookie = {"Cookie": f"hoinghi_session={response.cookies['hoinghi_session'].value}"}
    bearer = {"Authorization": f"Bearer {(await response.json())['access_token']}"}
    for headers in (cookie, bearer):
        await api.call("GET", "/api/me", as_user=None, headers=headers, expect=200)

    body = await patch(api, "vanthu", {"active": False}, expect=200)
    assert body["active"] is False
    (entry,) = await audit_of(api, "vanthu")
    assert entry["detail"]["changes"] == {"active": False}

    for headers in (cookie, bearer):
        answer = await api.call("GET", "/api/me", as_user=None, headers=headers, expect=401)
        assert answer["error"]["code"] == "account_disabled"
    page = await api.client.get("/archive", headers=cookie, allow_redirects=False)
    assert page.status == 302
    assert page.headers["Location"].startswith("/login?")
    refused = await login(api, "vanthu")
    assert refused.status == 401
    assert (await refused.json())["error"]["code"] == "bad_credentials"
    assert "Set-Cookie" not in refused.headers
    listed = await api.call("GET", "/api/accounts", as_user="admin", expect=200)
    assert {a["username"]: a["active"] for a in listed["items"]}["vanthu"] is False

    await patch(api, "vanthu", {"active": True}, expect=200)
    assert (await login(api, "vanthu")).status == 200


# --- password reset ----------------------------------------------------------------------------------


async def test_admin_resets_a_password(api: Any) -> None:
    response = await api.client.post(
        f"/api/accounts/{api.accounts['vanthu']}/password",
        json={"password": NEW_PASSWORD},
        headers=api.auth("admin"),
    )
    assert response.status == 204
    assert await response.read() == b""
    assert (await login(api, "vanthu")).status == 401
    assert (await login(api, "vanthu", NEW_PASSWORD)).status == 200
    row = await account_row(api, "vanthu")
    assert verify_password(row.password_hash, NEW_PASSWORD)
    (entry,) = await audit_of(api, "vanthu")
    assert entry["action"] == "account.password"
    assert entry["actor"] == "admin"
    assert NEW_PASSWORD not in json.dumps(entry, ensure_ascii=False)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"password": "ngắn"}, "invalid_field", "password"),
        ({"password": ""}, "invalid_field", "password"),
        ({"password": "x" * 257}, "invalid_field", "password"),
        ({}, "missing_field", "password"),
        ({"password": NEW_PASSWORD, "old": "x"}, "unknown_field", "old"),
    ],
    ids=["short", "empty", "long", "missing", "extra"],
)
async def test_a_bad_new_password_is_refused(
    api: Any, body: dict[str, Any], code: str, field: str
) -> None:
    before = await state(api)
    answer = await api.call(
        "POST",
        f"/api/accounts/{api.accounts['vanthu']}/password",
        as_user="admin",
        json=body,
        expect=422,
    )
    assert answer["error"]["code"] == code
    assert answer["error"]["field"] == field
    assert await state(api) == before


# --- the list's role filter -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "usernames"),
    [("admin", ["admin"]), ("clerk", ["vanthu"]), ("operator", ["vanhanh"])],
)
async def test_accounts_filtered_by_role(api: Any, role: str, usernames: list[str]) -> None:
    body = await api.call(
        "GET", "/api/accounts", params={"role": role}, as_user="admin", expect=200
    )
    assert [a["username"] for a in body["items"]] == usernames


async def test_the_role_filter_sees_added_roles(api: Any) -> None:
    await patch(api, "thuky", {"roles": ["secretariat", "clerk"]}, expect=200)
    body = await api.call(
        "GET", "/api/accounts", params={"role": "clerk"}, as_user="admin", expect=200
    )
    assert [a["username"] for a in body["items"]] == ["thuky", "vanthu"]


@pytest.mark.parametrize("role", ["king", "admin,clerk"])
async def test_a_bad_role_filter_is_refused(api: Any, role: str) -> None:
    body = await api.call(
        "GET", "/api/accounts", params={"role": role}, as_user="admin", expect=422
    )
    assert body["error"]["field"] == "role"


# --- the OpenAPI document ------------------------------------------------------------------------------


async def test_the_new_routes_are_documented(api: Any) -> None:
    document = await (await api.client.get("/api/openapi.json")).json()
    change = document["paths"]["/api/accounts/{account_id}"]["patch"]
    schema = document["components"]["schemas"]["AccountUpdate"]
    assert change["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AccountUpdate"
    }
    assert set(schema["properties"]) == {"display_name", "roles", "unit", "active"}
    assert schema.get("additionalProperties") is False
    assert {"401", "403", "404", "409", "422"} <= set(change["responses"])
    assert "admin" in change["description"]
    reset = document["paths"]["/api/accounts/{account_id}/password"]["post"]
    assert "204" in reset["responses"]
    assert reset["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PasswordReset"
    }
    listing = document["paths"]["/api/accounts"]["get"]
    assert [p["name"] for p in listing["parameters"]] == ["role"]


async def test_a_new_password_ends_the_accounts_sessions_and_tokens(api: Any) -> None:
    """Whoever knew the old password may hold a session: all of them end, at once,
    even one opened in the same second; a login with the new password works."""
    before = await login(api, "vanthu")
    assert before.status == 200
    bearer = (await before.json())["access_token"]
    cookie = {"Cookie": f"hoinghi_session={before.cookies['hoinghi_session'].value}"}
    api.client.session.cookie_jar.clear()
    for headers in (cookie, {"Authorization": f"Bearer {bearer}"}):
        assert (await api.client.get("/api/me", headers=headers)).status == 200
    response = await api.client.post(
        f"/api/accounts/{api.accounts['vanthu']}/password",
        json={"password": NEW_PASSWORD},
        headers=api.auth("admin"),
    )
    assert response.status == 204
    for headers in (cookie, {"Authorization": f"Bearer {bearer}"}):
        refused = await api.client.get("/api/me", headers=headers)
        assert refused.status == 401
        assert (await refused.json())["error"]["code"] == "token_revoked"
    # The pages too: the old session is sent to the login page.
    page = await api.client.get("/archive", headers=cookie, allow_redirects=False)
    assert page.status == 302
    after = await login(api, "vanthu", NEW_PASSWORD)
    assert after.status == 200
    fresh = {"Authorization": f"Bearer {(await after.json())['access_token']}"}
    assert (await api.client.get("/api/me", headers=fresh)).status == 200
    # Other accounts are untouched.
    assert (await api.client.get("/api/me", headers=api.auth("thuky"))).status == 200
