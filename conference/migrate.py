"""Schema migrations with Alembic, run on the application's own async engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from .db import Database

__all__ = ["current_revision", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(db: Database) -> str | None:
    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with db.engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema of ``db`` to ``revision``."""

    def _upgrade(conn: Connection) -> None:
        command.upgrade(_alembic_config(conn), revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def autogenerate(db: Database, message: str) -> Any:  # pragma: no cover - developer tool
    """Write a new revision from the difference between the models and ``db``."""

    def _revision(conn: Connection) -> Any:
        return command.revision(_alembic_config(conn), message=message, autogenerate=True)

    async with db.engine.begin() as conn:
        return await conn.run_sync(_revision)
