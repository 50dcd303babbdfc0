"""The web page (issue 19): its accounts and the session cookie's signing key.

Revision ID: 0003_web
Revises: 0002_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_web"
down_revision = "0002_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_web_users"),
    )
    op.create_table(
        "web_secrets",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_web_secrets"),
    )


def downgrade() -> None:
    op.drop_table("web_secrets")
    op.drop_table("web_users")
