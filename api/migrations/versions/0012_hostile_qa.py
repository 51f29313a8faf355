"""who last saved each annotation (Label Studio's ``updated_by``), one link per task of
the adjudication project, the hash of what was sent and when it was seen changed, when a
gold clip was first shown, when a task was deleted, the Label Studio task of each
hidden repeat, each imported task's data as pushed, and the state of the service's
webhook on each project

Links that shared an adjudication task are dropped (no one can say which clip that task
decides; those clips are sent again). Decisions stored before this revision have no
``updated_by``: their ``updated_at`` is cleared, so the next pull from Label Studio
(``POST /projects/{id}/reconcile``) reads them again instead of skipping them as not newer.

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
        batch.add_column(
            sa.Column("tampered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("predictions_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
    with op.batch_alter_table("gold_clip") as batch:
        batch.add_column(sa.Column("shown_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.execute(
        "UPDATE gold_clip SET shown_at = (SELECT MIN(l.sent_at) FROM adjudication_link l"
        " WHERE l.project_id = gold_clip.project_id AND l.clip_id = gold_clip.clip_id)"
    )
    op.execute(
        "UPDATE annotation SET updated_at = NULL WHERE updated_by IS NULL"
        " AND task_id IN (SELECT adjudication_task_id FROM adjudication_link)"
    )
    op.execute(
        "DELETE FROM adjudication_link WHERE adjudication_task_id IN (SELECT"
        " adjudication_task_id FROM adjudication_link GROUP BY adjudication_task_id"
        " HAVING COUNT(*) > 1)"
    )
    op.drop_index("ix_adjudication_link_adjudication_task_id", table_name="adjudication_link")
    op.create_index(
        "ix_adjudication_link_adjudication_task_id",
        "adjudication_link",
        ["adjudication_task_id"],
        unique=True,
    )
    with op.batch_alter_table("task") as batch:
        batch.add_column(
            sa.Column("deleted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("sync_state") as batch:
        for name in ("webhook_checked_at", "webhook_repaired_at"):
            batch.add_column(sa.Column(name, sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        for name in ("webhook_problem", "webhook_error"):
            batch.add_column(sa.Column(name, sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_table(
        "adjudication_project",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("checked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("problem", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("problem_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_adjudication_project_project_id", "adjudication_project", ["project_id"])
    op.execute(
        "INSERT INTO adjudication_project (id, project_id, recorded_at) SELECT"
        " adjudication_project_id, MIN(project_id), MIN(sent_at) FROM adjudication_link"
        " GROUP BY adjudication_project_id"
    )
    op.create_table(
        "pinned_task",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("data_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("pinned_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_index("ix_pinned_task_project_id", "pinned_task", ["project_id"])
    with op.batch_alter_table("repeat_clip") as batch:
        batch.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
    op.create_index("ix_repeat_clip_task_id", "repeat_clip", ["task_id"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("sync_state") as batch:
        for name in (
            "webhook_error",
            "webhook_problem",
            "webhook_repaired_at",
            "webhook_checked_at",
        ):
            batch.drop_column(name)
    op.drop_index("ix_adjudication_project_project_id", table_name="adjudication_project")
    op.drop_table("adjudication_project")
    op.drop_index("ix_pinned_task_project_id", table_name="pinned_task")
    op.drop_table("pinned_task")
    op.drop_index("ix_repeat_clip_task_id", table_name="repeat_clip")
    with op.batch_alter_table("repeat_clip") as batch:
        batch.drop_column("task_id")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("deleted_at")
    op.drop_index("ix_adjudication_link_adjudication_task_id", table_name="adjudication_link")
    op.create_index(
        "ix_adjudication_link_adjudication_task_id", "adjudication_link", ["adjudication_task_id"]
    )
    with op.batch_alter_table("gold_clip") as batch:
        batch.drop_column("shown_at")
    with op.batch_alter_table("adjudication_link") as batch:
        batch.drop_column("predictions_hash")
        batch.drop_column("tampered_at")
        batch.drop_column("sent_hash")
    with op.batch_alter_table("annotation") as batch:
        batch.drop_column("updated_by")
