"""decimal metric steps: a per-series scale

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_step_scales",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["keys.id"], name=op.f("fk_metric_step_scales_key_id_keys")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_metric_step_scales_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("run_id", "key_id", name=op.f("pk_metric_step_scales")),
    )


def downgrade() -> None:
    op.drop_table("metric_step_scales")
