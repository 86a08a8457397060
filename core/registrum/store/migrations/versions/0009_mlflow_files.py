"""MLflow files: runs' file trees and logged models

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_files",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_files_run_id_runs")),
        sa.ForeignKeyConstraint(
            ["sha256"], ["blobs.sha256"], name=op.f("fk_run_files_sha256_blobs")
        ),
        sa.PrimaryKeyConstraint("run_id", "path", name=op.f("pk_run_files")),
    )
    op.create_index("ix_run_files_sha256", "run_files", ["sha256"])
    op.create_table(
        "logged_models",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model_type", sa.String(length=256), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("deleted_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_logged_models_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_logged_models_run_id_runs")),
        sa.ForeignKeyConstraint(
            ["artifact_id"], ["artifacts.id"], name=op.f("fk_logged_models_artifact_id_artifacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logged_models")),
    )
    op.create_index(
        "ix_logged_models_project_created", "logged_models", ["project_id", "created_at"]
    )
    op.create_index("ix_logged_models_run", "logged_models", ["run_id"])
    op.create_table(
        "logged_model_files",
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.id"],
            name=op.f("fk_logged_model_files_model_id_logged_models"),
        ),
        sa.ForeignKeyConstraint(
            ["sha256"], ["blobs.sha256"], name=op.f("fk_logged_model_files_sha256_blobs")
        ),
        sa.PrimaryKeyConstraint("model_id", "path", name=op.f("pk_logged_model_files")),
    )
    op.create_index("ix_logged_model_files_sha256", "logged_model_files", ["sha256"])
    op.create_table(
        "run_model_outputs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_model_outputs_run_id_runs")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.id"],
            name=op.f("fk_run_model_outputs_model_id_logged_models"),
        ),
        sa.PrimaryKeyConstraint("run_id", "model_id", name=op.f("pk_run_model_outputs")),
    )


def downgrade() -> None:
    op.drop_table("run_model_outputs")
    op.drop_index("ix_logged_model_files_sha256", table_name="logged_model_files")
    op.drop_table("logged_model_files")
    op.drop_index("ix_logged_models_run", table_name="logged_models")
    op.drop_index("ix_logged_models_project_created", table_name="logged_models")
    op.drop_table("logged_models")
    op.drop_index("ix_run_files_sha256", table_name="run_files")
    op.drop_table("run_files")
