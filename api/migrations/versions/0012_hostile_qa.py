"""who last saved each annotation (Label Studio's ``updated_by``), one link per task of
the adjudication project and the hash of what was sent, and the Label Studio task of each
hidden repeat

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("annotation") as batch:
        batch.add_column(sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table("adjudication_link") as batch:
        batch.add_column(sa.Column("sent_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.drop_index("ix_adjudication_link_adjudication_task_id", table_name="adjudication_link")
    op.create_index(
        "ix_adjudication_link_adjudication_task_id",
        "adjudication_link",
        ["adjudication_task_id"],
        unique=True,
    )
    with op.batch_alter_table("repeat_clip") as batch:
        batch.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
    op.create_index("ix_repeat_clip_task_id", "repeat_clip", ["task_id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_repeat_clip_task_id", table_name="repeat_clip")
    with op.batch_alter_table("repeat_clip") as batch:
        batch.drop_column("task_id")
    op.drop_index("ix_adjudication_link_adjudication_task_id", table_name="adjudication_link")
    op.create_index(
        "ix_adjudication_link_adjudication_task_id", "adjudication_link", ["adjudication_task_id"]
    )
    with op.batch_alter_table("adjudication_link") as batch:
        batch.drop_column("sent_hash")
    with op.batch_alter_table("annotation") as batch:
        batch.drop_column("updated_by")
