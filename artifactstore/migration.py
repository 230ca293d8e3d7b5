"""Schema migrations: run Alembic from the installed package and check the revision.

The migration scripts live in the repository's top-level `migrations/` folder and ship inside
the wheel as the package `artifactstore._migrations`, so `artifactstore migrate` works where
there is no source checkout. Alembic is imported only here, and only when a migration runs.
"""

from __future__ import annotations

import fcntl
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from artifactstore import database, schema
from artifactstore.config import Settings
from artifactstore.errors import SchemaVersionError

if TYPE_CHECKING:
    from alembic.config import Config


def migrations_directory() -> Path:
    """The folder holding env.py and versions/, wherever the package is installed."""
    spec = importlib.util.find_spec("artifactstore._migrations")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    # Imported straight from a source checkout (not installed): the scripts sit beside it.
    checkout = Path(__file__).resolve().parent.parent / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    raise SchemaVersionError("artifactstore's migration scripts are not installed")


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to revision (default: the latest) in one transaction."""
    from alembic import command

    with schema.writer(engine).begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the database to revision (default: empty) in one transaction."""
    from alembic import command

    with schema.writer(engine).begin() as connection:
        command.downgrade(_alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in the database, or None if it was never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)


def has_tables(connection: Connection) -> bool:
    """True if the database holds any table at all."""
    return bool(inspect(connection).get_table_names())


def check_revision(connection: Connection, redacted_url: str) -> None:
    """Raise SchemaVersionError unless the database is at this code's schema revision."""
    revision = current_revision(connection)
    if revision == schema.SCHEMA_REVISION:
        return
    if revision is None:
        found = "has no artifactstore schema"
    else:
        found = f"is at schema revision {revision}"
    raise SchemaVersionError(
        f"database {redacted_url} {found}, this artifactstore needs revision "
        f"{schema.SCHEMA_REVISION}; run 'artifactstore migrate' "
        "(or upgrade artifactstore if the database is newer)"
    )


def migrate_database(settings: Settings, fresh: bool = False) -> tuple[str | None, str | None]:
    """Upgrade the settings' database to head (fresh: drop everything first).

    Returns the revisions before and after. Runs on an engine of its own, because
    ArtifactStore refuses a database that is behind. DatabaseError if the database cannot be
    used; SchemaVersionError if it is at a revision this code does not know.
    """
    from alembic.util.exc import CommandError

    url = settings.redacted_database_url
    engine = schema.make_engine(settings.database_url)
    try:
        with database.errors(url, "migrate"):
            _create_sqlite_folder(engine)
            with engine.connect() as connection:
                before = current_revision(connection)
            if fresh:
                downgrade(engine)
            upgrade(engine)
            with engine.connect() as connection:
                return before, current_revision(connection)
    except CommandError as exc:
        # alembic's way of saying the database is at a revision this code does not know.
        raise SchemaVersionError(f"cannot migrate database {url}: {exc}") from exc
    finally:
        engine.dispose()


def _create_sqlite_folder(engine: Engine) -> None:
    # SQLite creates the file but not its folder; the default lives in ./.artifactstore/.
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        Path(str(engine.url.database)).parent.mkdir(parents=True, exist_ok=True)


def prepare(engine: Engine, redacted_url: str) -> bool:
    """Create and migrate a new SQLite database; check the revision of any other.

    Returns True when this call created the database (a new embedded store).
    """
    fresh = False
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        database = Path(str(engine.url.database))
        database.parent.mkdir(parents=True, exist_ok=True)
        # Parallel CI jobs may all open a new store at once: one migrates, the rest wait.
        with Path(f"{database}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with engine.connect() as connection:
                fresh = not has_tables(connection)
            if fresh:
                upgrade(engine)
    with engine.connect() as connection:
        check_revision(connection, redacted_url)
    return fresh
