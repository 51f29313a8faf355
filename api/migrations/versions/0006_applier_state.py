"""applier state: watermark, heartbeat, inbox identity

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "applier_state",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("inbox_identity", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("heartbeat_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("caught_up_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("replaced_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("lost_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    )
    # the watermark continues where the inbox table's rows end (they were deleted as applied)
    op.execute("INSERT INTO applier_state (id, watermark) VALUES (1, 0)")


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("applier_state")
