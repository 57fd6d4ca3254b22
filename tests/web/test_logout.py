"""Logout ends the session cookie and the bearer token on the server, not only in the browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import func, select

from conference.models import RevokedToken
from conference.revocation import revoke
from conference.tokens import AccessClaims
from tests.conftest import PASSWORD


async def test_a_copied_cookie_and_bearer_stop_working_after_logout(api):
    response = await api.client.post(
        "/api/auth/login", json={"username": "thuky", "password": PASSWORD}
    )
    assert response.status == 200
    bearer = (await response.json())["access_token"]
    cookie = response.cookies["hoinghi_session"].value
    copied = {"Cookie": f"hoinghi_session={cookie}"}
    # Both work before the logout.
    assert (await api.client.get("/api/me", headers=copied)).status == 200
    assert (
        await api.client.get("/api/me", headers={"Authorization": f"Bearer {bearer}"})
    ).status == 200

    out = await api.client.post(
        "/api/auth/logout", headers=copied | {"Authorization": f"Bearer {bearer}"}
    )
    assert out.status == 204

    for headers in (copied, {"Authorization": f"Bearer {bearer}"}):
        api.client.session.cookie_jar.clear()
        after = await api.client.get("/api/me", headers=headers)
        assert after.status == 401
        assert (await after.json())["error"]["code"] == "token_revoked"
    # Another login still works: only those tokens ended.
    again = await api.client.post(
        "/api/auth/login", json={"username": "thuky", "password": PASSWORD}
    )
    assert again.status == 200


async def test_logout_without_credentials_is_harmless(api):
    response = await api.client.post("/api/auth/logout")
    assert response.status == 204


async def test_expired_revocations_are_purged(database):
    now = datetime.now(UTC)
    old = AccessClaims(
        account_id=1,
        username="a",
        roles=(),
        jti="old",
        expires=int((now - timedelta(hours=1)).timestamp()),
    )
    new = AccessClaims(
        account_id=1,
        username="a",
        roles=(),
        jti="new",
        expires=int((now + timedelta(hours=1)).timestamp()),
    )
    async with database.write() as s:
        await revoke(s, old, now - timedelta(hours=2))
    async with database.write() as s:
        await revoke(s, new, now)
        await revoke(s, new, now)  # idempotent
    async with database.read() as s:
        jtis = (await s.exec(select(RevokedToken.jti))).all()
        count = (await s.exec(select(func.count()).select_from(RevokedToken))).one()
    assert list(jtis) == ["new"]
    assert count == 1
