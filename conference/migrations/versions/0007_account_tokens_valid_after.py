"""account tokens valid after

When an account's password is set, the sessions and API tokens issued before
then stop working: ``account.tokens_valid_after`` holds that moment.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import conference.columns

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tokens_valid_after", conference.columns.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("tokens_valid_after")
