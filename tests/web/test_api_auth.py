"""Login, tokens, the session cookie and its cross-site guard, and account management.

Every test runs against a real aiohttp server over loopback, once on SQLite and
once on PostgreSQL (the ``api`` fixture is parametrized).
"""

from __future__ import annotations

import base64
import json
import time
import unicodedata
from http.cookies import SimpleCookie
from typing import Any

import jwt
import pytest
from sqlmodel import func, select

from conference.models import Account, AuditEntry
from conference.tokens import AUD_SESSION
from tests.conftest import ACCOUNTS, PASSWORD, page_csrf
from web.appkeys import CONFIG, TOKENS
from web.auth import CSRF_HEADER, SESSION_COOKIE

NON_ADMINS = ["thuky", "vanthu", "vanhanh", "chutri"]
FOREIGN_ORIGIN = "https://evil.example"


# --- helpers ----------------------------------------------------------------


async def count_rows(api: Any, model: Any) -> int:
    async with api.database.read() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def account_row(api: Any, username: str) -> Account | None:
    async with api.database.read() as session:
        return (await session.exec(select(Account).where(Account.username == username))).first()


async def login(api: Any, username: str, password: str = PASSWORD) -> Any:
    return await api.client.post(
        "/api/auth/login", json={"username": username, "password": password}
    )


def session_morsel(response: Any) -> Any:
    """The parsed ``Set-Cookie`` of the session cookie on ``response``."""
    cookies = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        cookies.load(header)
    assert SESSION_COOKIE in cookies, response.headers.getall("Set-Cookie", [])
    return cookies[SESSION_COOKIE]


def jar_has_session(api: Any) -> bool:
    return any(c.key == SESSION_COOKIE and c.value for c in api.client.session.cookie_jar)


def own_origin(api: Any) -> str:
    return str(api.client.make_url("/").origin())


def error_code(body: Any) -> str:
    assert isinstance(body, dict), body
    assert "error" in body, body
    return str(body["error"]["code"])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_account(**overrides: Any) -> dict[str, Any]:
    body = {
        "username": "nguyenvanan",
        "display_name": "Nguyễn Văn Ân",
        "password": "một-mật-khẩu-đủ-dài",
        "roles": ["clerk"],
        "unit": "QB-SNV",
    }
    body.update(overrides)
    return body


# --- login --------------------------------------------------------------------


async def test_login_with_right_password_returns_token_and_account(api: Any) -> None:
    response = await login(api, "thuky")
    assert response.status == 200
    body = await response.json()
    assert isinstance(body["access_token"], str)
    assert body["access_token"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == api.client.app[CONFIG].api_token_seconds
    account = body["account"]
    assert account == {
        "id": api.accounts["thuky"],
        "username": "thuky",
        "display_name": "Tài khoản thuky",
        "roles": ["secretariat"],
        "unit": "QB-VP",
        "active": True,
    }
    assert "password" not in json.dumps(body).lower()


async def test_login_sets_http_only_lax_session_cookie_for_whole_site(api: Any) -> None:
    response = await login(api, "thuky")
    assert response.status == 200
    morsel = session_morsel(response)
    assert morsel.value
    assert morsel["httponly"] is True
    assert morsel["samesite"].lower() == "lax"
    assert morsel["path"] == "/"
    assert int(morsel["max-age"]) == api.client.app[CONFIG].session_seconds
    # Plain HTTP in the test: the cookie must not claim Secure it cannot honour.
    assert not morsel["secure"]


async def test_login_wrong_password_and_unknown_user_are_refused_alike(api: Any) -> None:
    wrong = await login(api, "thuky", "không-phải-mật-khẩu")
    unknown = await login(api, "khong-ton-tai", PASSWORD)
    assert wrong.status == unknown.status == 401
    wrong_body, unknown_body = await wrong.json(), await unknown.json()
    assert error_code(wrong_body) == error_code(unknown_body) == "bad_credentials"
    # Same message too: the answer must not tell which usernames exist.
    assert wrong_body["error"]["message"] == unknown_body["error"]["message"]
    assert "WWW-Authenticate" in wrong.headers
    assert "Set-Cookie" not in wrong.headers
    assert not jar_has_session(api)


async def test_login_with_unknown_field_is_refused(api: Any) -> None:
    body = await api.call(
        "POST",
        "/api/auth/login",
        as_user=None,
        json={"username": "thuky", "password": PASSWORD, "remember": True},
        expect=422,
    )
    assert error_code(body) == "unknown_field"
    assert body["error"]["field"] == "remember"


async def test_login_token_works_as_bearer_on_me(api: Any) -> None:
    response = await login(api, "vanhanh")
    token = (await response.json())["access_token"]
    api.client.session.cookie_jar.clear()  # the bearer alone, no cookie
    me = await api.call(
        "GET", "/api/me", as_user=None, headers={"Authorization": f"Bearer {token}"}, expect=200
    )
    assert me["username"] == "vanhanh"
    assert me["id"] == api.accounts["vanhanh"]
    assert me["roles"] == ["operator"]
    assert me["unit"] == "QB-SNV"


async def test_session_cookie_alone_authenticates_get_me(api: Any) -> None:
    response = await login(api, "chutri")
    assert response.status == 200
    assert jar_has_session(api)
    me = await api.call("GET", "/api/me", as_user=None, expect=200)
    assert me["username"] == "chutri"
    assert me["roles"] == ["chair"]


async def test_session_cookie_sent_explicitly_authenticates(api: Any) -> None:
    tokens = api.client.app[TOKENS]
    cookie = tokens.issue_access(
        account_id=api.accounts["vanthu"],
        username="vanthu",
        roles=["clerk"],
        ttl_seconds=600,
        audience=AUD_SESSION,
    )
    me = await api.call(
        "GET", "/api/me", as_user=None, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, expect=200
    )
    assert me["username"] == "vanthu"


# --- the cross-site guard on cookie-authenticated changes ------------------------


async def test_cookie_post_with_foreign_origin_is_refused_cross_site(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    body = await api.call(
        "POST", "/api/auth/token", as_user=None, headers={"Origin": FOREIGN_ORIGIN}, expect=403
    )
    assert error_code(body) == "cross_site"


async def test_cookie_post_with_null_origin_is_refused_cross_site(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    body = await api.call(
        "POST", "/api/auth/token", as_user=None, headers={"Origin": "null"}, expect=403
    )
    assert error_code(body) == "cross_site"


async def test_cookie_post_with_cross_site_fetch_metadata_is_refused(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    body = await api.call(
        "POST",
        "/api/auth/token",
        as_user=None,
        headers={"Sec-Fetch-Site": "cross-site"},
        expect=403,
    )
    assert error_code(body) == "cross_site"


async def test_cookie_post_with_same_origin_and_the_pages_token_is_allowed(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    token = await page_csrf(api)
    body = await api.call(
        "POST",
        "/api/auth/token",
        as_user=None,
        headers={"Origin": own_origin(api), CSRF_HEADER: token},
        expect=200,
    )
    assert body["account"]["username"] == "thuky"


async def test_cookie_post_with_same_origin_fetch_metadata_is_allowed(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    token = await page_csrf(api)
    body = await api.call(
        "POST",
        "/api/auth/token",
        as_user=None,
        headers={"Sec-Fetch-Site": "same-origin", CSRF_HEADER: token},
        expect=200,
    )
    assert body["account"]["username"] == "thuky"


# --- the CSRF token on cookie-authenticated changes -----------------------------


@pytest.mark.parametrize("presented", [None, "", "x", "A" * 43, "A" * 5000])
async def test_cookie_post_without_the_right_csrf_token_is_refused(
    api: Any, presented: str | None
) -> None:
    assert (await login(api, "thuky")).status == 200
    headers = {"Origin": own_origin(api)}
    if presented is not None:
        headers[CSRF_HEADER] = presented
    body = await api.call("POST", "/api/auth/token", as_user=None, headers=headers, expect=403)
    assert error_code(body) == "csrf_failed"


async def test_another_sessions_csrf_token_is_refused(api: Any) -> None:
    # The token is bound to its session: one signed-in page's token is no key to
    # another session, even of the same account.
    assert (await login(api, "thuky")).status == 200
    first = await page_csrf(api)
    api.client.session.cookie_jar.clear()
    assert (await login(api, "thuky")).status == 200
    second = await page_csrf(api)
    assert first != second
    body = await api.call(
        "POST",
        "/api/auth/token",
        as_user=None,
        headers={"Origin": own_origin(api), CSRF_HEADER: first},
        expect=403,
    )
    assert error_code(body) == "csrf_failed"


async def test_a_change_without_the_csrf_token_writes_nothing(api: Any) -> None:
    assert (await login(api, "admin")).status == 200
    accounts, audits = await count_rows(api, Account), await count_rows(api, AuditEntry)
    body = await api.call(
        "POST",
        "/api/accounts",
        as_user=None,
        json=new_account(),
        headers={"Origin": own_origin(api)},
        expect=403,
    )
    assert error_code(body) == "csrf_failed"
    assert await count_rows(api, Account) == accounts
    assert await count_rows(api, AuditEntry) == audits
    assert await account_row(api, "nguyenvanan") is None


async def test_the_csrf_token_survives_a_key_rotation(api: Any) -> None:
    # A page loaded before the signing key rotated still sends its old token.
    assert (await login(api, "thuky")).status == 200
    token = await page_csrf(api)
    api.client.app[TOKENS].keyring.rotate()
    assert await page_csrf(api) != token
    body = await api.call(
        "POST",
        "/api/auth/token",
        as_user=None,
        headers={"Origin": own_origin(api), CSRF_HEADER: token},
        expect=200,
    )
    assert body["account"]["username"] == "thuky"


async def test_a_get_needs_no_csrf_token(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    me = await api.call("GET", "/api/me", as_user=None, expect=200)
    assert me["username"] == "thuky"


async def test_a_page_for_nobody_signed_in_has_no_csrf_token(api: Any) -> None:
    html = await (await api.client.get("/login")).text()
    assert "csrf-token" not in html


async def test_cross_site_cookie_change_writes_nothing(api: Any) -> None:
    assert (await login(api, "admin")).status == 200
    accounts, audits = await count_rows(api, Account), await count_rows(api, AuditEntry)
    body = await api.call(
        "POST",
        "/api/accounts",
        as_user=None,
        json=new_account(),
        headers={"Origin": FOREIGN_ORIGIN},
        expect=403,
    )
    assert error_code(body) == "cross_site"
    assert await count_rows(api, Account) == accounts
    assert await count_rows(api, AuditEntry) == audits
    assert await account_row(api, "nguyenvanan") is None


async def test_cookie_get_with_foreign_origin_is_allowed_as_it_changes_nothing(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    me = await api.call(
        "GET", "/api/me", as_user=None, headers={"Origin": FOREIGN_ORIGIN}, expect=200
    )
    assert me["username"] == "thuky"


async def test_bearer_post_with_foreign_origin_is_allowed(api: Any) -> None:
    # A bearer token is never sent by a browser on its own: no CSRF risk.
    body = await api.call(
        "POST",
        "/api/auth/token",
        as_user="thuky",
        headers={"Origin": FOREIGN_ORIGIN},
        expect=200,
    )
    assert body["account"]["username"] == "thuky"


# --- refusals of the caller's credentials ---------------------------------------


async def test_no_credentials_is_unauthenticated(api: Any) -> None:
    response = await api.client.get("/api/me")
    assert response.status == 401
    assert error_code(await response.json()) == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_basic_authorization_is_refused_as_bad_authorization(api: Any) -> None:
    body = await api.call(
        "GET", "/api/me", as_user=None, headers={"Authorization": "Basic x"}, expect=401
    )
    assert error_code(body) == "bad_authorization"


async def test_empty_bearer_is_refused_as_bad_authorization(api: Any) -> None:
    body = await api.call(
        "GET", "/api/me", as_user=None, headers={"Authorization": "Bearer "}, expect=401
    )
    assert error_code(body) == "bad_authorization"


async def test_expired_bearer_is_refused_token_expired(api: Any) -> None:
    token = api.client.app[TOKENS].issue_access(
        account_id=api.accounts["thuky"],
        username="thuky",
        roles=["secretariat"],
        ttl_seconds=-60,
    )
    body = await api.call(
        "GET", "/api/me", as_user=None, headers={"Authorization": f"Bearer {token}"}, expect=401
    )
    assert error_code(body) == "token_expired"


async def test_tampered_bearer_claiming_admin_is_refused_bad_signature(api: Any) -> None:
    header, payload, signature = api.token("thuky").split(".")
    claims = json.loads(b64url_decode(payload))
    claims["roles"] = ["admin"]
    claims["sub"] = str(api.accounts["admin"])
    forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])
    body = await api.call(
        "GET",
        "/api/accounts",
        as_user=None,
        headers={"Authorization": f"Bearer {forged}"},
        expect=401,
    )
    assert error_code(body) == "token_bad_signature"


async def test_bearer_with_altered_signature_is_refused(api: Any) -> None:
    header, payload, signature = api.token("thuky").split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    body = await api.call(
        "GET",
        "/api/me",
        as_user=None,
        headers={"Authorization": f"Bearer {header}.{payload}.{flipped}"},
        expect=401,
    )
    assert error_code(body) == "token_bad_signature"


async def test_garbage_bearer_is_refused_malformed(api: Any) -> None:
    body = await api.call(
        "GET", "/api/me", as_user=None, headers={"Authorization": "Bearer not-a-jwt"}, expect=401
    )
    assert error_code(body) == "token_malformed"


async def test_unsigned_alg_none_bearer_is_refused(api: Any) -> None:
    now = int(time.time())
    claims = {
        "iss": "hoinghi",
        "aud": "hoinghi-api",
        "sub": str(api.accounts["admin"]),
        "name": "admin",
        "roles": ["admin"],
        "jti": "x",
        "iat": now,
        "exp": now + 600,
    }
    token = ".".join(
        [
            b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode()),
            b64url(json.dumps(claims).encode()),
            "",
        ]
    )
    body = await api.call(
        "GET",
        "/api/accounts",
        as_user=None,
        headers={"Authorization": f"Bearer {token}"},
        expect=401,
    )
    assert error_code(body) == "token_bad_algorithm"


async def test_bearer_signed_with_unknown_key_is_refused(api: Any) -> None:
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": "hoinghi",
            "aud": "hoinghi-api",
            "sub": str(api.accounts["admin"]),
            "name": "admin",
            "roles": ["admin"],
            "jti": "x",
            "iat": now,
            "exp": now + 600,
        },
        "a-secret-this-server-never-had-0123456789",
        algorithm="HS256",
        headers={"kid": "not-a-kid-we-hold"},
    )
    body = await api.call(
        "GET",
        "/api/accounts",
        as_user=None,
        headers={"Authorization": f"Bearer {token}"},
        expect=401,
    )
    assert error_code(body) == "token_unknown_key"


async def test_session_token_used_as_bearer_is_wrong_audience(api: Any) -> None:
    response = await login(api, "thuky")
    session_token = session_morsel(response).value
    api.client.session.cookie_jar.clear()
    body = await api.call(
        "GET",
        "/api/me",
        as_user=None,
        headers={"Authorization": f"Bearer {session_token}"},
        expect=401,
    )
    assert error_code(body) == "token_wrong_audience"


async def test_api_token_used_as_session_cookie_is_wrong_audience(api: Any) -> None:
    body = await api.call(
        "GET",
        "/api/me",
        as_user=None,
        headers={"Cookie": f"{SESSION_COOKIE}={api.token('thuky')}"},
        expect=401,
    )
    assert error_code(body) == "token_wrong_audience"


# --- token refresh and logout ------------------------------------------------------


async def test_token_endpoint_returns_a_fresh_working_token(api: Any) -> None:
    old = api.token("vanthu")
    body = await api.call(
        "POST",
        "/api/auth/token",
        as_user=None,
        headers={"Authorization": f"Bearer {old}"},
        expect=200,
    )
    fresh = body["access_token"]
    assert fresh != old
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert body["account"]["username"] == "vanthu"
    me = await api.call(
        "GET", "/api/me", as_user=None, headers={"Authorization": f"Bearer {fresh}"}, expect=200
    )
    assert me["username"] == "vanthu"


async def test_token_endpoint_needs_credentials(api: Any) -> None:
    body = await api.call("POST", "/api/auth/token", as_user=None, expect=401)
    assert error_code(body) == "unauthenticated"


async def test_logout_clears_the_session_cookie(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    assert jar_has_session(api)
    response = await api.client.post("/api/auth/logout")
    assert response.status == 204
    morsel = session_morsel(response)
    assert morsel.value == ""
    assert morsel["path"] == "/"
    assert morsel["max-age"] in {"0", 0}
    assert not jar_has_session(api)
    body = await api.call("GET", "/api/me", as_user=None, expect=401)
    assert error_code(body) == "unauthenticated"


# --- a deactivated account ------------------------------------------------------


async def deactivate(api: Any, username: str) -> None:
    async with api.database.write() as session:
        account = (await session.exec(select(Account).where(Account.username == username))).one()
        account.active = False
        session.add(account)


async def test_deactivated_account_is_refused_with_valid_bearer(api: Any) -> None:
    token = api.token("thuky")
    await api.call(
        "GET", "/api/me", as_user=None, headers={"Authorization": f"Bearer {token}"}, expect=200
    )
    await deactivate(api, "thuky")
    body = await api.call(
        "GET", "/api/me", as_user=None, headers={"Authorization": f"Bearer {token}"}, expect=401
    )
    assert error_code(body) == "account_disabled"
    body = await api.call(
        "POST",
        "/api/auth/token",
        as_user=None,
        headers={"Authorization": f"Bearer {token}"},
        expect=401,
    )
    assert error_code(body) == "account_disabled"


async def test_deactivated_account_is_refused_with_valid_session_cookie(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    await deactivate(api, "thuky")
    body = await api.call("GET", "/api/me", as_user=None, expect=401)
    assert error_code(body) == "account_disabled"


async def test_deactivated_admin_cannot_manage_accounts(api: Any) -> None:
    await deactivate(api, "admin")
    body = await api.call("GET", "/api/accounts", as_user="admin", expect=401)
    assert error_code(body) == "account_disabled"
    accounts = await count_rows(api, Account)
    body = await api.call("POST", "/api/accounts", as_user="admin", json=new_account(), expect=401)
    assert error_code(body) == "account_disabled"
    assert await count_rows(api, Account) == accounts


async def test_deactivated_account_cannot_log_in(api: Any) -> None:
    await deactivate(api, "thuky")
    response = await login(api, "thuky")
    assert response.status == 401
    assert error_code(await response.json()) == "bad_credentials"
    assert not jar_has_session(api)


# --- accounts: listing and creating (admin only) ---------------------------------


async def test_admin_lists_accounts_without_secrets(api: Any) -> None:
    body = await api.call("GET", "/api/accounts", as_user="admin", expect=200)
    items = body["items"]
    assert sorted(a["username"] for a in items) == sorted(ACCOUNTS)
    by_name = {a["username"]: a for a in items}
    for username, (role, unit) in ACCOUNTS.items():
        assert by_name[username]["roles"] == [role.value]
        assert by_name[username]["unit"] == unit
        assert by_name[username]["id"] == api.accounts[username]
    for item in items:
        assert set(item) == {"id", "username", "display_name", "roles", "unit", "active"}


@pytest.mark.parametrize("username", NON_ADMINS)
async def test_non_admin_cannot_list_accounts(api: Any, username: str) -> None:
    body = await api.call("GET", "/api/accounts", as_user=username, expect=403)
    assert error_code(body) == "forbidden"


@pytest.mark.parametrize("username", NON_ADMINS)
async def test_non_admin_cannot_create_accounts(api: Any, username: str) -> None:
    accounts, audits = await count_rows(api, Account), await count_rows(api, AuditEntry)
    body = await api.call(
        "POST",
        "/api/accounts",
        as_user=username,
        json=new_account(roles=["admin"]),
        expect=403,
    )
    assert error_code(body) == "forbidden"
    assert await count_rows(api, Account) == accounts
    assert await count_rows(api, AuditEntry) == audits


async def test_accounts_need_credentials(api: Any) -> None:
    body = await api.call("GET", "/api/accounts", as_user=None, expect=401)
    assert error_code(body) == "unauthenticated"


async def test_admin_creates_account_that_can_log_in(api: Any) -> None:
    created = await api.call(
        "POST", "/api/accounts", as_user="admin", json=new_account(), expect=201
    )
    assert created["username"] == "nguyenvanan"
    assert created["display_name"] == "Nguyễn Văn Ân"
    assert created["roles"] == ["clerk"]
    assert created["unit"] == "QB-SNV"
    assert created["active"] is True
    assert "password" not in json.dumps(created).lower()

    listed = await api.call("GET", "/api/accounts", as_user="admin", expect=200)
    assert created in listed["items"]

    row = await account_row(api, "nguyenvanan")
    assert row is not None
    assert row.id == created["id"]
    assert "một-mật-khẩu-đủ-dài" not in row.password_hash  # stored hashed

    response = await login(api, "nguyenvanan", "một-mật-khẩu-đủ-dài")
    assert response.status == 200
    assert (await response.json())["account"] == created


@pytest.mark.parametrize(
    "display_name",
    [
        "Nguyễn Thị Hồng Nhung",
        unicodedata.normalize("NFD", "Trương Quốc Việt"),  # decomposed: must not be normalised
        "Đặng Ngọc Ánh – Phó Chánh Văn phòng 📋",
    ],
    ids=["nfc", "nfd", "dash-emoji"],
)
async def test_vietnamese_display_name_round_trips_unchanged(api: Any, display_name: str) -> None:
    created = await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json=new_account(display_name=display_name),
        expect=201,
    )
    assert created["display_name"] == display_name
    listed = await api.call("GET", "/api/accounts", as_user="admin", expect=200)
    (item,) = [a for a in listed["items"] if a["username"] == "nguyenvanan"]
    assert item["display_name"] == display_name
    row = await account_row(api, "nguyenvanan")
    assert row is not None
    assert row.display_name.encode("utf-8") == display_name.encode("utf-8")
    token = (await (await login(api, "nguyenvanan", "một-mật-khẩu-đủ-dài")).json())["access_token"]
    me = await api.call(
        "GET", "/api/me", as_user=None, headers={"Authorization": f"Bearer {token}"}, expect=200
    )
    assert me["display_name"] == display_name


async def test_duplicate_username_is_a_conflict_and_writes_nothing(api: Any) -> None:
    accounts, audits = await count_rows(api, Account), await count_rows(api, AuditEntry)
    body = await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json=new_account(username="thuky", display_name="Kẻ mạo danh"),
        expect=409,
    )
    assert error_code(body) == "username_taken"
    assert body["error"]["field"] == "username"
    assert await count_rows(api, Account) == accounts
    assert await count_rows(api, AuditEntry) == audits
    row = await account_row(api, "thuky")
    assert row is not None
    assert row.display_name == "Tài khoản thuky"


async def test_account_with_unknown_unit_is_refused_and_writes_nothing(api: Any) -> None:
    accounts, audits = await count_rows(api, Account), await count_rows(api, AuditEntry)
    body = await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json=new_account(unit="QB-KHONGCO"),
        expect=404,
    )
    assert error_code(body) == "unknown_unit"
    assert await count_rows(api, Account) == accounts
    assert await count_rows(api, AuditEntry) == audits
    assert await account_row(api, "nguyenvanan") is None


@pytest.mark.parametrize("password", ["", "ngắn", "1234567"])
async def test_weak_password_is_refused_naming_the_field(api: Any, password: str) -> None:
    accounts, audits = await count_rows(api, Account), await count_rows(api, AuditEntry)
    body = await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json=new_account(password=password),
        expect=422,
    )
    assert body["error"]["field"] == "password"
    assert await count_rows(api, Account) == accounts
    assert await count_rows(api, AuditEntry) == audits


async def test_password_of_eight_characters_is_accepted(api: Any) -> None:
    await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json=new_account(password="12345678"),
        expect=201,
    )
    assert (await login(api, "nguyenvanan", "12345678")).status == 200


async def test_unknown_account_field_is_refused_and_writes_nothing(api: Any) -> None:
    accounts, audits = await count_rows(api, Account), await count_rows(api, AuditEntry)
    body = await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json={**new_account(), "active": False},
        expect=422,
    )
    assert error_code(body) == "unknown_field"
    assert body["error"]["field"] == "active"
    assert await count_rows(api, Account) == accounts
    assert await count_rows(api, AuditEntry) == audits


async def test_unknown_role_is_refused(api: Any) -> None:
    accounts = await count_rows(api, Account)
    body = await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json=new_account(roles=["superuser"]),
        expect=422,
    )
    assert body["error"]["field"].startswith("roles")
    assert await count_rows(api, Account) == accounts


# --- audit -------------------------------------------------------------------------


async def test_account_creation_is_audited(api: Any) -> None:
    before = await api.call("GET", "/api/audit", as_user="admin", expect=200)
    await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json=new_account(roles=["clerk", "chair"]),
        expect=201,
    )
    after = await api.call("GET", "/api/audit", as_user="admin", expect=200)
    assert len(after["items"]) == len(before["items"]) + 1
    entry = after["items"][0]  # newest first
    assert entry["action"] == "account.create"
    assert entry["object_type"] == "account"
    assert entry["object_id"] == "nguyenvanan"
    assert entry["actor"] == "admin"
    assert entry["detail"]["roles"] == ["chair", "clerk"]
    filtered = await api.call(
        "GET",
        "/api/audit?object_type=account&object_id=nguyenvanan",
        as_user="admin",
        expect=200,
    )
    assert [e["action"] for e in filtered["items"]] == ["account.create"]


async def test_refused_account_changes_leave_no_audit_entry(api: Any) -> None:
    await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json=new_account(username="thuky"),
        expect=409,
    )
    await api.call(
        "POST",
        "/api/accounts",
        as_user="admin",
        json=new_account(password="short"),
        expect=422,
    )
    body = await api.call("GET", "/api/audit?object_type=account", as_user="admin", expect=200)
    assert body["items"] == []


@pytest.mark.parametrize("username", NON_ADMINS)
async def test_non_admin_cannot_read_audit(api: Any, username: str) -> None:
    body = await api.call("GET", "/api/audit", as_user=username, expect=403)
    assert error_code(body) == "forbidden"


async def test_audit_needs_credentials(api: Any) -> None:
    body = await api.call("GET", "/api/audit", as_user=None, expect=401)
    assert error_code(body) == "unauthenticated"


# --- another site can neither sign a browser in nor out ---------------------------


@pytest.mark.parametrize("forged", [{"Origin": FOREIGN_ORIGIN}, {"Sec-Fetch-Site": "cross-site"}])
async def test_a_cross_site_login_is_refused_and_sets_no_cookie(
    api: Any, forged: dict[str, str]
) -> None:
    response = await api.client.post(
        "/api/auth/login", json={"username": "thuky", "password": PASSWORD}, headers=forged
    )
    assert response.status == 403
    assert error_code(await response.json()) == "cross_site"
    assert SESSION_COOKIE not in response.cookies
    # The same login from this origin works.
    response = await api.client.post(
        "/api/auth/login",
        json={"username": "thuky", "password": PASSWORD},
        headers={"Origin": own_origin(api)},
    )
    assert response.status == 200


async def test_a_cross_site_logout_is_refused_and_the_session_lives_on(api: Any) -> None:
    assert (await login(api, "thuky")).status == 200
    response = await api.client.post("/api/auth/logout", headers={"Origin": FOREIGN_ORIGIN})
    assert response.status == 403
    assert error_code(await response.json()) == "cross_site"
    me = await api.call("GET", "/api/me", as_user=None, expect=200)
    assert me["username"] == "thuky"
