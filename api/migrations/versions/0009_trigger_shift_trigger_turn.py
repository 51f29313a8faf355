"""shift events: the turn an annotator linked as the shift's cause

Revision ID: 0009_trigger
Revises: 0008
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009_trigger"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("shift_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trigger_turn", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("shift_event", schema=None) as batch_op:
        batch_op.drop_column("trigger_turn")
