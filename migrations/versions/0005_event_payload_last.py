"""The events table with its payload as the last column.

A finalize event's payload is the manifest, ~43 MB for 100,000 files. SQLite writes a row in
one record, built in memory, unless the blob is the row's last column: then the row can be
inserted with a zero-filled blob of the right length, which SQLite never expands, and the
manifest copied into it in pieces (`events.log`). The table is rebuilt on SQLite (batch mode).
On PostgreSQL the order only keeps `SELECT *` in the same column order as on SQLite (the
`Event` fields); the payload column is moved to the end by copying it into a new column, which
PostgreSQL appends, rather than by rebuilding the table with its constraints and indexes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _move_last("payload", sa.LargeBinary, ("chain_digest", "payload"))


def downgrade() -> None:
    _move_last("chain_digest", sa.String(64), ("payload", "chain_digest"))


def _move_last(name: str, kind: sa.types.TypeEngine[object], order: tuple[str, str]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("events", recreate="always", partial_reordering=[order]):
            pass
        return
    moved = f"{name}_moved"
    op.add_column("events", sa.Column(moved, kind, nullable=True))
    op.execute(f"UPDATE events SET {moved} = {name}")
    op.drop_column("events", name)
    op.alter_column("events", moved, new_column_name=name, nullable=False)
