"""meeting title search

``meeting.title_search``: the title without case and tone marks, so a title
search is a LIKE in the database instead of folding every title in Python.
Existing rows are filled here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 16:40:00
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_STROKES = str.maketrans("Đđ", "Dd")


def _fold(text: str) -> str:
    # conference.slugs.fold as of this revision (a migration must not change later).
    decomposed = unicodedata.normalize("NFKD", text.translate(_STROKES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def upgrade() -> None:
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "title_search",
                sqlmodel.sql.sqltypes.AutoString(length=1200),
                nullable=False,
                server_default="",
            )
        )
    meeting = sa.table(
        "meeting", sa.column("id", sa.Integer), sa.column("title"), sa.column("title_search")
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(meeting.c.id, meeting.c.title)).all()
    for row_id, title in rows:
        bind.execute(
            meeting.update().where(meeting.c.id == row_id).values(title_search=_fold(title))
        )


def downgrade() -> None:
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.drop_column("title_search")
