"""intended emotions kept by the service, not in Label Studio tasks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "intended_emotion",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("turn_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("turn_index", sa.Integer(), nullable=False),
        sa.Column("emotion", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "turn_id"),
    )
    with op.batch_alter_table("intended_emotion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intended_emotion_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("intended_emotion")
