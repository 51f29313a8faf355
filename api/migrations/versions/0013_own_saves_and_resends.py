"""who Label Studio last recorded as saving an annotation as its own annotator and what
its result was then, how often each clip was sent to adjudication again after tampering
(and whether a link was marked for a change to the whole project), the stamp (Label
Studio's ``updated_at``) of the service's webhook on each project at its last check, the
claim on a project's periodic full pull, and the adjudication projects' settings as
PROJECT_UPDATED webhooks reported them

``annotation.own_saved_by`` starts as what is known now: the annotator, where they were
the last to save it, with that save's times; the results' hashes start unknown.
``adjudication_resend`` starts empty.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("annotation") as batch:
        for name in ("own_saved_by", "own_hash", "result_hash"):
            batch.add_column(sa.Column(name, sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        for name in ("own_updated_at", "own_received_at"):
            batch.add_column(sa.Column(name, sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.execute(
        "UPDATE annotation SET own_saved_by = annotator, own_updated_at = updated_at, "
        "own_received_at = received_at "
        "WHERE updated_by IS NOT NULL AND updated_by = annotator"
    )
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(
            sa.Column("webhook_stamp", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch.add_column(
            sa.Column("full_pull_claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("adjudication_link") as batch:
        batch.add_column(
            sa.Column(
                "tampered_by_project", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    op.create_table(
        "project_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_project_report_project_id", "project_report", ["project_id"])
    op.create_table(
        "adjudication_resend",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("resends", sa.Integer(), nullable=False),
        sa.Column("last_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "clip_id"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("adjudication_resend")
    op.drop_index("ix_project_report_project_id", table_name="project_report")
    op.drop_table("project_report")
    with op.batch_alter_table("adjudication_link") as batch:
        batch.drop_column("tampered_by_project")
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("full_pull_claimed_at")
        batch.drop_column("webhook_stamp")
    with op.batch_alter_table("annotation") as batch:
        for name in (
            "own_received_at",
            "own_updated_at",
            "result_hash",
            "own_hash",
            "own_saved_by",
        ):
            batch.drop_column(name)
