"""registry changes MLflow's API makes: renamed and deleted models and versions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registered_models") as batch:
        batch.add_column(sa.Column("deleted_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("deleted_name", sa.String(length=256), nullable=True))
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("deleted_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("registered_models") as batch:
        batch.drop_column("deleted_name")
        batch.drop_column("deleted_at")
