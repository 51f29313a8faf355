"""task overlap: what the adaptive overlap policy wants of each task, and what Label Studio
was last told

Revision ID: 0010
Revises: 0009_trigger
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009_trigger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "task_overlap",
        sa.Column("task_id", sa.Integer(), primary_key=True, nullable=False, autoincrement=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("annotators", sa.Integer(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("unsettled", sa.Integer(), nullable=False),
        sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("applied", sa.Integer(), nullable=True),
        sa.Column("applied_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tried_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    )
    op.create_index("ix_task_overlap_project_id", "task_overlap", ["project_id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_task_overlap_project_id", table_name="task_overlap")
    op.drop_table("task_overlap")
