"""Upload sessions (the blobs an ingest in flight holds, the files a push has staged); an
index for reading a package's lifecycle from the log; the packages view no longer keeps a copy
of each manifest (reads take it from the finalize event, which holds it anyway); and what
nothing ever used goes: the metadata_schemas table and the storage_locations columns
retrieval_tier and restore_status (always 'hot' and 'available').

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIMESTAMP = sa.String(32)
HEX_DIGEST = sa.String(64)
ADDRESS = sa.String(80)


def upgrade() -> None:
    op.create_index("ix_events_package_id_event_type", "events", ["package_id", "event_type"])
    with op.batch_alter_table("artifact_packages") as batch:
        batch.drop_column("manifest")
    with op.batch_alter_table("storage_locations") as batch:
        batch.drop_column("retrieval_tier")
        batch.drop_column("restore_status")
    op.drop_table("metadata_schemas")
    op.create_table(
        "upload_sessions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_upload_sessions"),
    )
    op.create_index("ix_upload_sessions_expires_at", "upload_sessions", ["expires_at"])
    op.create_table(
        "upload_session_blobs",
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("content_address", ADDRESS, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "content_address", name="pk_upload_session_blobs"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["upload_sessions.id"],
            name="fk_upload_session_blobs_session_id_upload_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_upload_session_blobs_content_address", "upload_session_blobs", ["content_address"]
    )
    op.create_table(
        "upload_session_files",
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("digest_primary", HEX_DIGEST, nullable=False),
        sa.Column("digest_sha256", HEX_DIGEST, nullable=False),
        sa.Column("executable", sa.Boolean, nullable=False),
        sa.Column("backend_id", sa.String(64), nullable=False),
        sa.Column("object_key", sa.String(300), nullable=False),
        sa.Column("stored_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "path", name="pk_upload_session_files"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["upload_sessions.id"],
            name="fk_upload_session_files_session_id_upload_sessions",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.create_table(
        "metadata_schemas",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("schema", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metadata_schemas"),
        sa.UniqueConstraint("name", name="uq_metadata_schemas_name"),
    )
    with op.batch_alter_table("storage_locations") as batch:
        batch.add_column(
            sa.Column("retrieval_tier", sa.String(16), nullable=False, server_default="hot")
        )
        batch.add_column(
            sa.Column("restore_status", sa.String(16), nullable=False, server_default="available")
        )
    # The copies come back empty; 'artifactstore replay' fills them from the log.
    with op.batch_alter_table("artifact_packages") as batch:
        batch.add_column(sa.Column("manifest", sa.LargeBinary, nullable=True))
    op.drop_index("ix_events_package_id_event_type", table_name="events")
    op.drop_table("upload_session_files")
    op.drop_index("ix_upload_session_blobs_content_address", table_name="upload_session_blobs")
    op.drop_table("upload_session_blobs")
    op.drop_index("ix_upload_sessions_expires_at", table_name="upload_sessions")
    op.drop_table("upload_sessions")
