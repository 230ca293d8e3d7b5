"""Schema migrations: run Alembic from the installed package and check the revision.

The migration scripts live in the repository's top-level `migrations/` folder and ship inside
the wheel as the package `artifactstore._migrations`, so `artifactstore migrate` works where
there is no source checkout. Alembic is imported only here, and only when a migration runs.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from artifactstore import database, schema
from artifactstore.config import Settings
from artifactstore.errors import DatabaseError, SchemaVersionError, StoreNotFoundError
from artifactstore.permissions import LOCK_FILE_MODE, make_directories

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
    path = schema.sqlite_file(engine.url)
    if path is None:
        return
    try:
        make_directories(path.parent)
    except OSError as exc:
        raise DatabaseError(
            f"cannot create the folder of database {path}: {exc.strerror or exc} ({exc.filename})"
        ) from exc


def prepare(engine: Engine, redacted_url: str, create: bool = True) -> bool:
    """Check the database is at this code's revision; with create, make a new SQLite one first.

    Returns True when this call created the database (a new embedded store). Without create,
    a SQLite file that does not exist raises StoreNotFoundError and nothing is created.
    """
    path = schema.sqlite_file(engine.url)
    fresh = False
    if path is not None and not create:
        if not _is_file(path):
            raise StoreNotFoundError(
                f"no store at {path}: the database file does not exist (check --db or "
                "ARTIFACTSTORE_DATABASE_URL; push or migrate create a store)"
            )
    elif path is not None:
        _create_sqlite_folder(engine)
        # Parallel CI jobs may all open a new store at once: one migrates, the rest wait.
        with _locked(Path(f"{path}.lock")):
            with engine.connect() as connection:
                fresh = not has_tables(connection)
            if fresh:
                upgrade(engine)
    with engine.connect() as connection:
        check_revision(connection, redacted_url)
    return fresh


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError as exc:
        raise DatabaseError(f"cannot look for database {path}: {exc.strerror or exc}") from exc


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # Read-only and created with an explicit mode: under umask 000 the lock is still not
    # world-writable, and a user who may not write it can still take the lock.
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, LOCK_FILE_MODE)
    except OSError as exc:
        raise DatabaseError(f"cannot open lock file {lock_path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
