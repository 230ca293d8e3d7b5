"""What an upload session knows of each blob it holds: size, SHA-256 and where it is stored.

A blob uploaded over HTTP is hashed by the server when it is written, but no package names it
until a later request publishes one; the session row is where the server keeps what the hash
found, so the publish can write the file entries without reading the bytes again. The columns
are empty for blobs a local push holds (it stages whole files instead).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("size", "digest_sha256", "backend_id", "object_key", "stored_at")


def upgrade() -> None:
    with op.batch_alter_table("upload_session_blobs") as batch:
        batch.add_column(sa.Column("size", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("digest_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("backend_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("object_key", sa.String(300), nullable=True))
        batch.add_column(sa.Column("stored_at", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upload_session_blobs") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
