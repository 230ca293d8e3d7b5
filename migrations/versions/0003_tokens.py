"""Server tokens: the `tokens` view (replay rebuilds it from the v1.token.* events).

A token row holds the SHA-256 of its secret, never the secret itself.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("prefix", sa.String(255), nullable=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_tokens"),
        sa.CheckConstraint("scope IN ('read', 'write', 'admin')", name="ck_tokens_scope"),
    )


def downgrade() -> None:
    op.drop_table("tokens")
