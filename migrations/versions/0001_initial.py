"""Initial schema: the event log, its head row, the views and the seeded retention classes.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.String(32)
HEX_DIGEST = sa.String(64)
ADDRESS = sa.String(80)

RETENTION_CLASSES = [
    # name, keep_days, deletable, explicit_delete_only, description
    ("ephemeral", 1, True, False, "kept for 1 day"),
    ("ci", 14, True, False, "kept for 14 days"),
    ("standard", 90, True, False, "kept for 90 days (the default)"),
    ("release", None, True, True, "kept forever; deleted only explicitly"),
    ("legal-hold", None, False, True, "kept forever; not deletable until the hold is released"),
]


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("sequence", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("package_id", sa.String(36), nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("chain_digest", HEX_DIGEST, nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    op.create_index("ix_events_package_id", "events", ["package_id"])
    head = op.create_table(
        "event_log_head",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("chain_digest", HEX_DIGEST, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_log_head"),
        sa.CheckConstraint("id = 1", name="ck_event_log_head_single_row"),
    )
    classes = op.create_table(
        "retention_classes",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("keep_days", sa.Integer, nullable=True),
        sa.Column("deletable", sa.Boolean, nullable=False),
        sa.Column("explicit_delete_only", sa.Boolean, nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_retention_classes"),
    )
    op.create_table(
        "artifact_packages",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("metadata", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("finalized_at", TIMESTAMP, nullable=True),
        sa.Column("manifest_digest", ADDRESS, nullable=True),
        sa.Column("manifest", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_artifact_packages"),
        sa.UniqueConstraint("name", "version", name="uq_artifact_packages_name_version"),
        sa.CheckConstraint("state IN ('open', 'finalized')", name="ck_artifact_packages_state"),
    )
    op.create_table(
        "artifact_files",
        sa.Column("package_id", sa.String(36), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("digest_algorithm", sa.String(16), nullable=False),
        sa.Column("digest_primary", HEX_DIGEST, nullable=False),
        sa.Column("digest_sha256", HEX_DIGEST, nullable=False),
        sa.Column("content_address", ADDRESS, nullable=False),
        sa.Column("executable", sa.Boolean, nullable=False),
        sa.Column("backend_id", sa.String(64), nullable=False),
        sa.Column("ingested_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("package_id", "path", name="pk_artifact_files"),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["artifact_packages.id"],
            name="fk_artifact_files_package_id_artifact_packages",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_artifact_files_content_address", "artifact_files", ["content_address"])
    op.create_table(
        "storage_locations",
        sa.Column("content_address", ADDRESS, nullable=False),
        sa.Column("backend_id", sa.String(64), nullable=False),
        sa.Column("object_key", sa.String(300), nullable=False),
        sa.Column("digest_algorithm", sa.String(16), nullable=False),
        sa.Column("digest_primary", HEX_DIGEST, nullable=False),
        sa.Column("digest_sha256", HEX_DIGEST, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("retrieval_tier", sa.String(16), nullable=False),
        sa.Column("restore_status", sa.String(16), nullable=False),
        sa.Column("stored_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("content_address", "backend_id", name="pk_storage_locations"),
    )
    op.create_index("ix_storage_locations_size", "storage_locations", ["size"])
    op.create_table(
        "retention_state",
        sa.Column("package_id", sa.String(36), nullable=False),
        sa.Column("retention_class", sa.String(32), nullable=False),
        sa.Column("assigned_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("package_id", name="pk_retention_state"),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["artifact_packages.id"],
            name="fk_retention_state_package_id_artifact_packages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["retention_class"],
            ["retention_classes.name"],
            name="fk_retention_state_retention_class_retention_classes",
        ),
    )
    op.create_index("ix_retention_state_expires_at", "retention_state", ["expires_at"])
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
    op.bulk_insert(head, [{"id": 1, "last_sequence": 0, "chain_digest": "0" * 64}])
    op.bulk_insert(
        classes,
        [
            {
                "name": name,
                "keep_days": keep_days,
                "deletable": deletable,
                "explicit_delete_only": explicit,
                "description": description,
            }
            for name, keep_days, deletable, explicit, description in RETENTION_CLASSES
        ],
    )


def downgrade() -> None:
    for table in (
        "metadata_schemas",
        "retention_state",
        "storage_locations",
        "artifact_files",
        "artifact_packages",
        "retention_classes",
        "event_log_head",
        "events",
    ):
        op.drop_table(table)
