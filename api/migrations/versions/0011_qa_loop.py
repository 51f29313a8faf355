"""adjudication links (which clip went to which task of the adjudication project), the
clips the import marked as gold, and the hidden repeats it made

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "adjudication_link",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source_task_id", sa.Integer(), nullable=False),
        sa.Column("adjudication_project_id", sa.Integer(), nullable=False),
        sa.Column("adjudication_task_id", sa.Integer(), nullable=False),
        sa.Column("turns", sa.JSON(), nullable=True),
        sa.Column("disagreeing", sa.JSON(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=True),
        sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "clip_id"),
    )
    op.create_index("ix_adjudication_link_project_id", "adjudication_link", ["project_id"])
    op.create_index(
        "ix_adjudication_link_adjudication_task_id", "adjudication_link", ["adjudication_task_id"]
    )
    op.create_table(
        "gold_clip",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("marked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "clip_id"),
    )
    op.create_index("ix_gold_clip_project_id", "gold_clip", ["project_id"])
    op.create_table(
        "repeat_clip",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("original_clip_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("turns", sa.JSON(), nullable=True),
        sa.Column("made_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "clip_id"),
    )
    op.create_index("ix_repeat_clip_project_id", "repeat_clip", ["project_id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_repeat_clip_project_id", table_name="repeat_clip")
    op.drop_table("repeat_clip")
    op.drop_index("ix_gold_clip_project_id", table_name="gold_clip")
    op.drop_table("gold_clip")
    op.drop_index("ix_adjudication_link_adjudication_task_id", table_name="adjudication_link")
    op.drop_index("ix_adjudication_link_project_id", table_name="adjudication_link")
    op.drop_table("adjudication_link")
