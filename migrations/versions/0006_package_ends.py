"""Tombstones, holds and maintenance leases: packages end without leaving the views.

`package_ends` records that a package was abandoned, expired or deleted; the package's own
row stays, so its (name, version) is never reused and `ls --all` can show it. Abandoned
packages used to leave the views altogether: their tombstones are rebuilt here from the log,
as replay would build them. `retention_state` gains the hold (reason and time), and `leases`
names the one process running periodic maintenance.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from artifactstore import cbor

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "package_ends",
        sa.Column(
            "package_id",
            sa.String(36),
            sa.ForeignKey("artifact_packages.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ended_at", sa.String(32), nullable=False),
        sa.CheckConstraint("state IN ('abandoned', 'expired', 'deleted')", name="state"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
    )
    with op.batch_alter_table("retention_state") as batch:
        batch.add_column(sa.Column("hold_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("held_at", sa.String(32), nullable=True))
    _rebuild_abandoned()


def downgrade() -> None:
    bind = op.get_bind()
    abandoned = "SELECT package_id FROM package_ends WHERE state = 'abandoned'"
    for table in ("retention_state", "artifact_files", "artifact_packages"):
        key = "id" if table == "artifact_packages" else "package_id"
        bind.execute(sa.text(f"DELETE FROM {table} WHERE {key} IN ({abandoned})"))
    with op.batch_alter_table("retention_state") as batch:
        batch.drop_column("held_at")
        batch.drop_column("hold_reason")
    op.drop_table("leases")
    op.drop_table("package_ends")


def _rebuild_abandoned() -> None:
    bind = op.get_bind()
    ended = bind.execute(
        sa.text(
            "SELECT package_id, occurred_at FROM events "
            "WHERE event_type = 'v1.package.abandoned' ORDER BY sequence"
        )
    ).all()
    for package_id, ended_at in ended:
        opening = bind.execute(
            sa.text(
                "SELECT event_type, occurred_at, payload FROM events WHERE package_id = :id "
                "AND event_type IN ('v1.package.created', 'v1.retention.assigned') "
                "ORDER BY sequence"
            ),
            {"id": package_id},
        ).all()
        created = next(row for row in opening if row.event_type == "v1.package.created")
        assigned = next(row for row in opening if row.event_type == "v1.retention.assigned")
        package = cbor.decode_trusted(bytes(created.payload))
        retention = cbor.decode_trusted(bytes(assigned.payload))
        assert isinstance(package, dict) and isinstance(retention, dict)
        bind.execute(
            sa.text(
                "INSERT INTO artifact_packages (id, name, version, state, metadata, created_at) "
                "VALUES (:id, :name, :version, 'open', :metadata, :created_at)"
            ),
            {
                "id": package_id,
                "name": package["name"],
                "version": package["version"],
                "metadata": cbor.encode(package["metadata"]),
                "created_at": created.occurred_at,
            },
        )
        bind.execute(
            sa.text(
                "INSERT INTO retention_state (package_id, retention_class, assigned_at) "
                "VALUES (:id, :class, :assigned_at)"
            ),
            {"id": package_id, "class": retention["class"], "assigned_at": assigned.occurred_at},
        )
        bind.execute(
            sa.text(
                "INSERT INTO package_ends (package_id, state, ended_at) "
                "VALUES (:id, 'abandoned', :ended_at)"
            ),
            {"id": package_id, "ended_at": ended_at},
        )
