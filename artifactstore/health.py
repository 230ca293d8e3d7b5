"""Health reports: is the registry database usable, and is the blob storage reachable?

Shared by `artifactstore health` and `GET /health`. A report can be made for an open store or,
when the store could not even be opened (database down, schema behind), from the Settings and
the error: health must answer in exactly the situations where everything else fails. Nothing
here prints a password; every URL is the redacted one.

A long-running server's pooled connections keep reading the files they opened, even once those
are deleted or replaced, so the probe asks a new connection, and a SQLite file that is no longer
the one the store's connections use is a failure in itself: the report is about the store as it
is now, not as it was when the server started.
"""

from __future__ import annotations

from dataclasses import dataclass

from artifactstore import database, migration, schema
from artifactstore._version import __version__
from artifactstore.config import Settings
from artifactstore.dataplane.factory import dataplane_from_settings
from artifactstore.dataplane.spi import BackendHealth
from artifactstore.errors import ArtifactStoreError, DatabaseError, SchemaVersionError
from artifactstore.schema import SCHEMA_REVISION
from artifactstore.store import ArtifactStore


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    """Whether the registry database answers and is at this code's schema revision."""

    dialect: str
    url: str
    reachable: bool
    schema_revision: str | None
    detail: str

    @property
    def ok(self) -> bool:
        """True when the database answers and its schema is the one this code needs."""
        return self.reachable and self.schema_revision == SCHEMA_REVISION


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The health of both parts of a store; `failing` names the parts that are not ok."""

    database: DatabaseHealth
    storage: BackendHealth

    @property
    def failing(self) -> list[str]:
        """The unhealthy parts, from "database" and "storage" (empty when all is well)."""
        parts = [("database", self.database.ok), ("storage", self.storage.reachable)]
        return [name for name, ok in parts if not ok]

    @property
    def ok(self) -> bool:
        """True when no part is failing."""
        return not self.failing

    def to_json(self) -> dict[str, object]:
        """The report as the JSON object `GET /health` and `health --json` return."""
        return {
            "status": "ok" if self.ok else "unhealthy",
            "version": __version__,
            "failing": self.failing,
            "database": {
                "dialect": self.database.dialect,
                "url": self.database.url,
                "reachable": self.database.reachable,
                "schema_revision": self.database.schema_revision,
                "expected_schema_revision": SCHEMA_REVISION,
                "detail": self.database.detail,
            },
            "storage": {
                "backend_id": self.storage.backend_id,
                "reachable": self.storage.reachable,
                "free_bytes": self.storage.free_bytes,
                "total_bytes": self.storage.total_bytes,
                "detail": self.storage.detail,
            },
        }


def check_health(settings: Settings, opened: ArtifactStore | Exception) -> HealthReport:
    """The health of the store the settings name, given what opening it gave: the store, or
    the error that stopped it (then the database is reported failing and the storage alone
    is checked)."""
    if isinstance(opened, ArtifactStore):
        return _check(settings, opened)
    return _check_unopened(settings, opened)


def _check(settings: Settings, store: ArtifactStore) -> HealthReport:
    dialect, url = store.engine.dialect.name, store.redacted_url
    replaced = schema.replaced_file(store.engine)
    if replaced is not None:
        return HealthReport(
            DatabaseHealth(dialect, url, False, None, replaced), store.storage_health()
        )
    try:
        revision = _probe_revision(settings.database_url, url)
    except DatabaseError as exc:
        health = DatabaseHealth(dialect, url, False, None, str(exc))
    else:
        detail = "ok" if revision == SCHEMA_REVISION else _revision_detail(revision)
        health = DatabaseHealth(dialect, url, True, revision, detail)
    return HealthReport(health, store.storage_health())


def _probe_revision(database_url: str, redacted_url: str) -> str | None:
    """The schema revision as a new connection sees it (see schema.probe_engine)."""
    engine = schema.probe_engine(database_url)
    try:
        with database.errors(redacted_url), engine.connect() as connection:
            return migration.current_revision(connection)
    finally:
        engine.dispose()


def _check_unopened(settings: Settings, error: Exception) -> HealthReport:
    url = settings.redacted_database_url
    # The URL may be too broken for SQLAlchemy to parse; its scheme is all a reader needs.
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    # A schema that is behind or ahead means the database did answer.
    reachable = isinstance(error, SchemaVersionError)
    database = DatabaseHealth(dialect, url, reachable, None, str(error))
    try:
        dataplane = dataplane_from_settings(settings)
    except ArtifactStoreError as exc:
        return HealthReport(database, BackendHealth("-", False, str(exc), None, None))
    try:
        storage = dataplane.health()
    finally:
        dataplane.close()
    return HealthReport(database, storage)


def _revision_detail(revision: str | None) -> str:
    found = "has no schema" if revision is None else f"is at schema revision {revision}"
    return f"database {found}, needs {SCHEMA_REVISION}; run 'artifactstore migrate'"
