"""MLflow tracking: experiment (project) tags, soft-deleted runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_tags",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_tags_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", "key", name=op.f("pk_project_tags")),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("deleted_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("deleted_at")
    op.drop_table("project_tags")
