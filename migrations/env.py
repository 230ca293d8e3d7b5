"""Alembic environment: migrations run against artifactstore.schema's metadata.

The connection comes from `artifactstore.migration` (config.attributes["connection"]); when
the alembic command line is used directly, the URL comes from ARTIFACTSTORE_DATABASE_URL.
"""

from __future__ import annotations

import os

from alembic import context

from artifactstore import schema
from artifactstore.config import load_settings


def run_offline() -> None:
    """Emit SQL for the configured URL without connecting."""
    context.configure(
        url=load_settings(os.environ).database_url,
        target_metadata=schema.metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on the connection we were given, or on one we open."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        engine = schema.make_engine(load_settings(os.environ).database_url)
        with schema.writer(engine).begin() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=schema.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
