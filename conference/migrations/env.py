"""Alembic environment: runs on the connection that ``conference.migrate`` hands it."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import conference.models  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always driven by conference.migrate
    raise RuntimeError("run migrations with `hoinghi db upgrade`")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
