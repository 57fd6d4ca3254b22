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


async def test_0008_fills_the_folded_title_of_existing_meetings(tmp_path):
    """Meetings made before ``title_search`` existed are found by a title search."""
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(db, "0007")
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO unit (id, code, name, kind, created_at)"
                " VALUES (1, 'QB', 'Tỉnh', 'PROVINCE', '2026-01-01 00:00:00.000000')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO meeting (id, title, agenda, starts_at, ends_at, chair_unit_id, kind,"
                " status, recording, auto_admit, revision, created_at, updated_at) VALUES"
                " (1, 'Họp GIAO BAN Đột xuất', '[]', '2026-01-01 01:00:00.000000',"
                " '2026-01-01 02:00:00.000000', 1, 'REGULAR', 'SCHEDULED', 0, 0, 0,"
                " '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
            )
        await upgrade(db)
        async with db.engine.connect() as conn:
            folded = (
                await conn.exec_driver_sql("SELECT title_search FROM meeting WHERE id = 1")
            ).scalar()
        assert folded == "hop giao ban dot xuat"
    finally:
        await db.close()
