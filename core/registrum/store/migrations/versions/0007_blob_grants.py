"""blob grants: which user uploaded which blob's bytes, so that a hash alone reads nothing;
indexes to find the projects that reference a blob

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_grants",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_blob_grants_user_id_users")
        ),
        sa.PrimaryKeyConstraint("sha256", "user_id", name=op.f("pk_blob_grants")),
    )
    op.create_index("ix_artifact_files_sha256", "artifact_files", ["sha256"])
    op.create_index("ix_code_versions_diff", "code_versions", ["diff_sha256"])


def downgrade() -> None:
    op.drop_index("ix_code_versions_diff", table_name="code_versions")
    op.drop_index("ix_artifact_files_sha256", table_name="artifact_files")
    op.drop_table("blob_grants")
