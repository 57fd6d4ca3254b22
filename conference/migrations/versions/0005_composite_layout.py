"""composite layout

The layout a composite was asked for, so a job a restart interrupted runs again
with it (it ran with the default before).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 13:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "composite_layout",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="speaker",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_column("composite_layout")
