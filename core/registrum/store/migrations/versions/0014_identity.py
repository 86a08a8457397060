"""identity: OIDC users, service accounts, group roles, scoped tokens, browser sessions

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("service", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("oidc_issuer", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("oidc_subject", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("groups", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("admin_by_groups", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("groups_all", sa.Text(), nullable=True))
        batch.create_unique_constraint(
            batch.f("uq_users_oidc_issuer_oidc_subject"), ["oidc_issuer", "oidc_subject"]
        )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("project", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=True))
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(sa.Column("source", sa.String(length=512), nullable=True))
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    op.create_index("ix_sessions_user", "sessions", ["user_id"])
    op.create_table(
        "login_requests",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_login_requests")),
    )
    op.create_index("ix_login_requests_expires", "login_requests", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_login_requests_expires", table_name="login_requests")
    op.drop_table("login_requests")
    op.drop_index("ix_sessions_user", table_name="sessions")
    op.drop_table("sessions")
    with op.batch_alter_table("memberships") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("role")
        batch.drop_column("project")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_oidc_issuer_oidc_subject", type_="unique")
        batch.drop_column("groups_all")
        batch.drop_column("admin_by_groups")
        batch.drop_column("groups")
        batch.drop_column("email")
        batch.drop_column("oidc_subject")
        batch.drop_column("oidc_issuer")
        batch.drop_column("service")
