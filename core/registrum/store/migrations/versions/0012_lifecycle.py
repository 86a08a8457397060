"""lifecycle: deleted projects and artifacts, when a blob was last used, retention policies

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("deleted_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("keep_checkpoints", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("artifact_ttl", sa.Double(), nullable=True))
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("deleted_at", sa.Double(), nullable=True))
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("used_at", sa.Double(), nullable=True))
    # What stands on an artifact, asked per artifact by deletion, retention and collection.
    op.create_index("ix_model_versions_artifact", "model_versions", ["artifact_id"])
    op.create_index("ix_dataset_versions_artifact", "dataset_versions", ["artifact_id"])
    op.create_index("ix_logged_models_artifact", "logged_models", ["artifact_id"])


def downgrade() -> None:
    op.drop_index("ix_logged_models_artifact", table_name="logged_models")
    op.drop_index("ix_dataset_versions_artifact", table_name="dataset_versions")
    op.drop_index("ix_model_versions_artifact", table_name="model_versions")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("used_at")
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("artifact_ttl")
        batch.drop_column("keep_checkpoints")
        batch.drop_column("deleted_at")
