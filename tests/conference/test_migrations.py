"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from conference.db import Database
from conference.migrate import current_revision, head_revision, upgrade


async def _diff(db: Database) -> list[object]:
    def compare(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, SQLModel.metadata)

    async with db.engine.connect() as conn:
        return await conn.run_sync(compare)


async def test_migrated_schema_matches_the_models(database):
    assert await current_revision(database) == head_revision()
    assert await _diff(database) == []


async def test_upgrade_is_idempotent(database):
    await upgrade(database)
    await upgrade(database)
    assert await current_revision(database) == head_revision()


async def test_fresh_sqlite_is_created_and_in_wal_mode(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'sub' / 'fresh.db'}")
    try:
        await upgrade(db)
        assert await current_revision(db) == head_revision()
        async with db.engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        assert mode == "wal"
        assert fks == 1
    finally:
        await db.close()
