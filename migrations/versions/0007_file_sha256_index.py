"""An index on `artifact_files.digest_sha256`: the OCI distribution API (/v2) asks for blobs
by SHA-256, and a repository's blob is found through the files that name it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_artifact_files_digest_sha256", "artifact_files", ["digest_sha256"])


def downgrade() -> None:
    op.drop_index("ix_artifact_files_digest_sha256", table_name="artifact_files")
