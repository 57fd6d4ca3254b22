"""/healthz answers while the process runs; /readyz only while the database answers.

The readiness test takes a real PostgreSQL database away (renames it after
ending its connections) and gives it back.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from conference.config import Config
from conference.db import Database
from conference.migrate import upgrade
from tests.conftest import POSTGRES_URL, _asyncpg_dsn
from web.app import SchemaOutOfDate, create_app, prepare_database


@pytest.fixture
async def own_postgres(postgres_database):
    """A database of this test's own, since the test renames it."""
    name = f"hoinghi_ready_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin, name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}_away" WITH (FORCE)')
        await admin.close()


async def test_readyz_follows_the_database(aiohttp_client, tmp_path, own_postgres):
    admin, name = own_postgres
    url = str(make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
    db = Database(url)
    await upgrade(db)
    await db.close()
    client = await aiohttp_client(
        create_app(Config(data_dir=tmp_path, database_url=url, media="none"))
    )
    assert (await client.get("/readyz")).status == 200

    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
    )
    await admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{name}_away"')
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "database_unavailable"
    health = await client.get("/healthz")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"

    await admin.execute(f'ALTER DATABASE "{name}_away" RENAME TO "{name}"')
    assert (await client.get("/readyz")).status == 200


async def test_postgres_behind_the_code_refuses_to_start(own_postgres):
    _, name = own_postgres
    db = Database(str(make_url(POSTGRES_URL).set(database=name)))
    try:
        with pytest.raises(SchemaOutOfDate, match="hoinghi db upgrade"):
            await prepare_database(db)
        await upgrade(db)
        await prepare_database(db)  # at head now: no error
    finally:
        await db.close()


async def test_security_headers_on_every_response(api):
    response = await api.client.get("/healthz")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response = await api.client.get("/api/meetings", headers=api.auth("thuky"))
    assert response.headers["Cache-Control"] == "no-store"


async def test_unknown_api_path_is_json_404(api):
    response = await api.client.get("/api/khong-co")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
