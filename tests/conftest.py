"""Fixtures shared by the suite: a real database (SQLite and PostgreSQL), a real
aiohttp server for the app, seeded units and accounts.

PostgreSQL: ``HOINGHI_TEST_POSTGRES_URL`` (default the local server, trust auth).
Each run creates its own database, migrates it once, and truncates between
tests. Outside CI an unreachable server skips those tests with the reason; in
CI (``CI=true``) it fails them, since CI must run them.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from conference.actors import SYSTEM
from conference.config import Config
from conference.db import Database
from conference.demo import bundled_units_csv
from conference.migrate import upgrade
from conference.models import Account, Role, Unit
from conference.passwords import hash_password
from conference.units import import_units_csv
from web.app import create_app
from web.appkeys import TOKENS

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "HOINGHI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "mật-khẩu-thử-nghiệm"
_PASSWORD_HASH = hash_password(PASSWORD)

# One account per role; the unit is the one that role acts for in tests.
ACCOUNTS = {
    "admin": (Role.ADMIN, "QB-STTTT"),
    "thuky": (Role.SECRETARIAT, "QB-VP"),
    "vanthu": (Role.CLERK, "QB-VP"),
    "chutri": (Role.CHAIR, "QB"),
    "vanhanh": (Role.OPERATOR, "QB-SNV"),
}


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run; dropped afterwards."""
    name = f"hoinghi_test_{uuid.uuid4().hex[:10]}"
    admin_dsn = _asyncpg_dsn(POSTGRES_URL)

    async def create() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await conn.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
        finally:
            await conn.close()
        db = Database(str(make_url(POSTGRES_URL).set(database=name)))
        try:
            await upgrade(db)
        finally:
            await db.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        reason = f"PostgreSQL at {POSTGRES_URL} is not usable: {e!r}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    yield str(make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
    asyncio.run(drop())


async def _truncate(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hoinghi.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated, empty database (SQLite file per test, or the run's PostgreSQL)."""
    db = Database(database_url)
    if db.is_sqlite:
        await upgrade(db)
    else:
        await _truncate(db)
    yield db
    await db.close()


async def seed(db: Database) -> dict[str, int]:
    """The province's units and one account per role; returns account ids by username."""
    async with db.write() as session:
        await import_units_csv(session, SYSTEM, bundled_units_csv())
    ids: dict[str, int] = {}
    async with db.write() as session:
        for username, (role, unit_code) in ACCOUNTS.items():
            unit = (
                await session.exec(Unit.__table__.select().where(Unit.code == unit_code))
            ).first()  # type: ignore[attr-defined]
            account = Account(
                username=username,
                display_name=f"Tài khoản {username}",
                password_hash=_PASSWORD_HASH,
                roles=[role.value],
                unit_id=unit.id if unit else None,
            )
            session.add(account)
            await session.flush()
            assert account.id is not None
            ids[username] = account.id
    return ids


@pytest.fixture
async def seeded(database: Database) -> dict[str, int]:
    return await seed(database)


@dataclass
class Api:
    """A client of the real app over a real loopback socket, with helpers."""

    client: TestClient[Any, Any]
    accounts: dict[str, int]
    database: Database

    def token(self, username: str) -> str:
        role, _ = ACCOUNTS[username]
        tokens = self.client.app[TOKENS]  # type: ignore[index]
        return str(
            tokens.issue_access(
                account_id=self.accounts[username],
                username=username,
                roles=[role.value],
                ttl_seconds=600,
            )
        )

    def auth(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_user: str | None = "thuky",
        json: Any = None,
        expect: int | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if as_user is not None:
            headers.update(self.auth(as_user))
        response = await self.client.request(method, path, json=json, headers=headers, **kwargs)
        body: Any = (
            await response.json()
            if response.content_type == "application/json"
            else await response.text()
        )
        if expect is not None:
            assert response.status == expect, (response.status, body)
        return body


async def cookie_for(api: Api, username: str, password: str = PASSWORD) -> dict[str, str]:
    """The ``Cookie`` header of a fresh session of ``username``, as a browser would send
    it; the client's own jar is left empty, so each request says whose it is."""
    response = await api.client.post(
        "/api/auth/login", json={"username": username, "password": password}
    )
    assert response.status == 200, await response.text()
    cookie = response.cookies["hoinghi_session"].value
    api.client.session.cookie_jar.clear()
    return {"Cookie": f"hoinghi_session={cookie}"}


_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


async def page_csrf(api: Api, headers: dict[str, str] | None = None) -> str:
    """The CSRF token a signed-in page renders in ``<meta name="csrf-token">``, for
    the session in ``headers`` (a ``Cookie``) or in the client's cookie jar. Any
    page carries it, the 403 page too: ``/archive`` is asked for."""
    response = await api.client.get("/archive", headers=headers or {}, allow_redirects=False)
    found = _CSRF_META.search(await response.text())
    assert found is not None, f"no CSRF token on the page ({response.status})"
    return found.group(1)


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    # No media engine here: these tests drive the API and signaling; the SFU's own
    # tests (tests/media) run in a network namespace with real peers.
    return Config(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="https://hoinghi.test",
        media="none",
    )


@pytest.fixture
async def api(
    aiohttp_client: Any, config: Config, database: Database, seeded: dict[str, int]
) -> Api:
    client = await aiohttp_client(create_app(config))
    return Api(client=client, accounts=seeded, database=database)
