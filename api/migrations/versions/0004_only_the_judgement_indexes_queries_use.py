"""only the judgement indexes queries use

Five single-column indexes of the judgement table served no query (their columns are
prefixes of other keys, or never filtered on alone) but cost every inserted row a b-tree
insert; reports and exports read a dimension's rows by (project, dimension).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 15:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DROPPED = ("project_id", "annotation_id", "annotator", "turn_id", "dimension")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("judgement", schema=None) as batch_op:
        for column in DROPPED:
            batch_op.drop_index(f"ix_judgement_{column}")
        batch_op.create_index(
            "ix_judgement_project_dimension", ["project_id", "dimension"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("judgement", schema=None) as batch_op:
        batch_op.drop_index("ix_judgement_project_dimension")
        for column in DROPPED:
            batch_op.create_index(f"ix_judgement_{column}", [column], unique=False)
