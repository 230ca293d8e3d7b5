"""The registry database: table definitions and the one place engines are built.

`events` is the append-only log and the source of truth; `event_log_head` holds the last
sequence and chain digest, and every write transaction locks that one row before it reads the
state it checks (`events.log.lock_head`). `upload_sessions`, with the blobs each holds and the
files a push has staged, is operational state like the head: not a view, never replayed.
`artifact_packages`, `artifact_files`, `storage_locations`, `retention_state`, `package_ends`
(the tombstone of an abandoned, expired or deleted package, whose `artifact_packages.state`
keeps the state it ended from) and `tokens` are views that replay rebuilds from the log;
`leases` (who runs periodic maintenance) is operational state. `retention_classes` (seeded by
the first migration) is reference data. Timestamps are RFC 3339 UTC text with microseconds:
identical on SQLite and PostgreSQL, so canonical dumps of the views compare byte for byte.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from artifactstore.config import check_database_url, redact_database_url
from artifactstore.errors import ConfigError

SCHEMA_REVISION = "0007"
"""The Alembic revision this code expects; a test keeps it equal to the migrations' head."""

GENESIS_CHAIN_DIGEST = "0" * 64
"""The chain digest the first event chains from."""

SQLITE_BUSY_TIMEOUT_MS = 120_000
"""How long a SQLite writer queues for the write lock before giving up (parallel CI jobs)."""

CONNECT_TIMEOUT_SECONDS = 5
"""How long a new PostgreSQL connection may take, unless the URL sets connect_timeout: an
unreachable server is an error (and a 503 from /health) within seconds, not a hang."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_TIMESTAMP = String(32)
_HEX_DIGEST = String(64)
_ADDRESS = String(80)


def _owned_by(name: str, parent: str) -> Column[str]:
    """Key column `name` of a row that belongs to `parent` ('table.id'), deleted with it."""
    return Column(name, String(36), ForeignKey(parent, ondelete="CASCADE"), primary_key=True)


events = Table(
    "events",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("occurred_at", _TIMESTAMP, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("package_id", String(36), nullable=True),
    Column("chain_digest", _HEX_DIGEST, nullable=False),
    # Last, so a large payload can be written in pieces into a zero blob (migration 0005).
    Column("payload", LargeBinary, nullable=False),
    Index(None, "package_id"),
    # The writer reads a package's state from the log: its created/finalized/abandoned events.
    Index(None, "package_id", "event_type"),
)

event_log_head = Table(
    "event_log_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("chain_digest", _HEX_DIGEST, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

retention_classes = Table(
    "retention_classes",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("keep_days", Integer, nullable=True),
    Column("deletable", Boolean, nullable=False),
    Column("explicit_delete_only", Boolean, nullable=False),
    Column("description", String(200), nullable=False),
)

artifact_packages = Table(
    "artifact_packages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("version", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("metadata", LargeBinary, nullable=False),
    Column("created_at", _TIMESTAMP, nullable=False),
    Column("finalized_at", _TIMESTAMP, nullable=True),
    Column("manifest_digest", _ADDRESS, nullable=True),
    UniqueConstraint("name", "version"),
    CheckConstraint("state IN ('open', 'finalized')", name="state"),
)

artifact_files = Table(
    "artifact_files",
    metadata,
    _owned_by("package_id", "artifact_packages.id"),
    Column("path", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("digest_algorithm", String(16), nullable=False),
    Column("digest_primary", _HEX_DIGEST, nullable=False),
    Column("digest_sha256", _HEX_DIGEST, nullable=False),
    Column("content_address", _ADDRESS, nullable=False),
    Column("executable", Boolean, nullable=False),
    Column("backend_id", String(64), nullable=False),
    Column("ingested_at", _TIMESTAMP, nullable=False),
    Index(None, "content_address"),
    # The OCI distribution API (/v2) finds a repository's blob by its SHA-256.
    Index(None, "digest_sha256"),
)

storage_locations = Table(
    "storage_locations",
    metadata,
    Column("content_address", _ADDRESS, primary_key=True),
    Column("backend_id", String(64), primary_key=True),
    Column("object_key", String(300), nullable=False),
    Column("digest_algorithm", String(16), nullable=False),
    Column("digest_primary", _HEX_DIGEST, nullable=False),
    Column("digest_sha256", _HEX_DIGEST, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("stored_at", _TIMESTAMP, nullable=False),
    # Ingest asks "is any blob this size stored?" before hashing a large file twice.
    Index(None, "size"),
)

retention_state = Table(
    "retention_state",
    metadata,
    _owned_by("package_id", "artifact_packages.id"),
    Column(
        "retention_class",
        String(32),
        ForeignKey("retention_classes.name"),
        nullable=False,
    ),
    Column("assigned_at", _TIMESTAMP, nullable=False),
    Column("expires_at", _TIMESTAMP, nullable=True),
    # A hold (legal or otherwise) keeps the package from ending: why, and since when.
    Column("hold_reason", Text, nullable=True),
    Column("held_at", _TIMESTAMP, nullable=True),
    Index(None, "expires_at"),
)

package_ends = Table(
    "package_ends",
    metadata,
    _owned_by("package_id", "artifact_packages.id"),
    Column("state", String(16), nullable=False),
    Column("ended_at", _TIMESTAMP, nullable=False),
    CheckConstraint("state IN ('abandoned', 'expired', 'deleted')", name="state"),
)

upload_sessions = Table(
    "upload_sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("actor", String(256), nullable=False),
    Column("created_at", _TIMESTAMP, nullable=False),
    Column("expires_at", _TIMESTAMP, nullable=False),
    Index(None, "expires_at"),
)

upload_session_blobs = Table(
    "upload_session_blobs",
    metadata,
    _owned_by("session_id", "upload_sessions.id"),
    Column("content_address", _ADDRESS, primary_key=True),
    # What the server's hash of an HTTP upload found (empty for a local push's blobs).
    Column("size", BigInteger, nullable=True),
    Column("digest_sha256", _HEX_DIGEST, nullable=True),
    Column("backend_id", String(64), nullable=True),
    Column("object_key", String(300), nullable=True),
    Column("stored_at", _TIMESTAMP, nullable=True),
    # Garbage collection asks "does any live session hold this blob?".
    Index(None, "content_address"),
)

upload_session_files = Table(
    "upload_session_files",
    metadata,
    _owned_by("session_id", "upload_sessions.id"),
    Column("path", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("digest_primary", _HEX_DIGEST, nullable=False),
    Column("digest_sha256", _HEX_DIGEST, nullable=False),
    Column("executable", Boolean, nullable=False),
    Column("backend_id", String(64), nullable=False),
    Column("object_key", String(300), nullable=False),
    Column("stored_at", _TIMESTAMP, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("scope", String(8), nullable=False),
    Column("prefix", String(255), nullable=True),
    # The SHA-256 of the secret (artifactstore.tokens says why no slow KDF), never the secret.
    Column("secret_sha256", _HEX_DIGEST, nullable=False),
    Column("created_at", _TIMESTAMP, nullable=False),
    Column("expires_at", _TIMESTAMP, nullable=True),
    Column("revoked_at", _TIMESTAMP, nullable=True),
    CheckConstraint("scope IN ('read', 'write', 'admin')", name="scope"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", _TIMESTAMP, nullable=False),
)

VIEW_TABLES = (
    artifact_packages,
    artifact_files,
    storage_locations,
    retention_state,
    package_ends,
    tokens,
)
"""Tables replay rebuilds from the log, parents before children."""

_WRITE_OPTION = "artifactstore_write"

FileIdentity = tuple[int, int]
"""A file's (st_dev, st_ino): the same path with another identity is another file."""


def make_engine(url: str) -> Engine:
    """Build the engine for a database URL; SQLite gets WAL, FULL sync and queued writers.

    ConfigError for a URL that does not parse (a bad port, say) or names no installed driver.
    """
    with _url_errors(url):
        parsed = _parse(url)
        if parsed.get_backend_name() != "sqlite":
            return create_engine(parsed, pool_pre_ping=True, connect_args=_connect_timeout(parsed))
        engine = create_engine(parsed)
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    path = sqlite_file(parsed)
    if path is not None:
        opened: set[FileIdentity | None] = set()
        _opened_files[engine] = (path, opened)
        event.listen(engine, "connect", lambda _dbapi, _record: opened.add(_identity(path)))
    return engine


def probe_engine(url: str) -> Engine:
    """An engine for one health probe: every connection new, the connect timeout short, and a
    missing SQLite file an error, never created (unlike make_engine's)."""
    with _url_errors(url):
        parsed = _parse(url)
        if parsed.get_backend_name() != "sqlite":
            return create_engine(parsed, poolclass=NullPool, connect_args=_connect_timeout(parsed))
        path = sqlite_file(parsed)
        if path is None:
            return create_engine(parsed, poolclass=NullPool)
    uri = f"file:{quote(str(path))}?mode=rw"
    return create_engine(
        "sqlite://",
        poolclass=NullPool,
        creator=lambda: sqlite3.connect(uri, uri=True, timeout=CONNECT_TIMEOUT_SECONDS),
    )


def replaced_file(engine: Engine) -> str | None:
    """Why the SQLite file at the engine's path is not the one its connections opened (deleted
    or replaced since), or None (also for other databases).

    A pooled connection keeps reading the file it opened, even once that file is unlinked, so
    only a look at the path tells that the store under it changed.
    """
    path, opened = _opened_files.get(engine, (None, set()))
    if path is None or not opened:
        return None
    current = _identity(path)
    if current is None:
        return f"database file {path} was deleted while in use; restore it and restart"
    if opened != {current}:
        return f"database file {path} was replaced while in use; restart to use the new one"
    return None


def _identity(path: Path) -> FileIdentity | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


_opened_files: weakref.WeakKeyDictionary[Engine, tuple[Path, set[FileIdentity | None]]] = (
    weakref.WeakKeyDictionary()
)
"""Per SQLite engine: its file, and the (st_dev, st_ino) of each file its connections opened."""


def sqlite_file(parsed: URL) -> Path | None:
    """The file of a SQLite URL's database, or None (another database, or in memory)."""
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def _parse(url: str) -> URL:
    check_database_url(url)
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@contextmanager
def _url_errors(url: str) -> Iterator[None]:
    try:
        yield
    except (ArgumentError, ImportError, ValueError) as exc:
        # The driver's message may quote the whole URL, password included: name only the kind
        # of problem.
        raise ConfigError(
            f"cannot use database URL {redact_database_url(url)}: {_url_problem(exc)}"
        ) from exc


def _connect_timeout(parsed: URL) -> dict[str, int]:
    return {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}


def _url_problem(exc: Exception) -> str:
    if isinstance(exc, NoSuchModuleError):
        return "unknown database dialect or driver"
    if isinstance(exc, ImportError):
        return "its database driver is not installed"
    return "not a valid database URL"


def writer(engine: Engine) -> Engine:
    """The same engine, but its transactions take the write lock up front (SQLite)."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def _configure_sqlite_connection(
    dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry
) -> None:
    # The driver's own implicit BEGIN is switched off so that _begin_sqlite_transaction can
    # choose between BEGIN and BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _begin_sqlite_transaction(connection: Any) -> None:
    # A deferred transaction that later writes can fail with SQLITE_BUSY without waiting
    # (a read lock cannot be upgraded while another writer holds the lock); writers therefore
    # take the lock at BEGIN, where the busy timeout makes them queue.
    if connection.get_execution_options().get(_WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def byte_order(column: Any, connection: Connection) -> Any:
    """column for ORDER BY and comparisons in the bytewise order of its UTF-8 text.

    That is the manifest's order. SQLite compares text with memcmp (BINARY); PostgreSQL's
    default collation follows the locale, and "C" compares bytes.
    """
    return column.collate("C") if connection.dialect.name == "postgresql" else column


def dialect_insert(connection: Connection) -> Any:
    """The insert() of the connection's dialect, which has on_conflict_do_nothing/update."""
    # Imported here: the postgresql package pulls in asyncio and its async drivers, which an
    # embedded SQLite store never needs.
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def execute_many(
    connection: Connection, build: Callable[[Connection], Any], rows: list[dict[str, Any]]
) -> None:
    """Run the statement build(connection) makes over many rows, through the driver's executemany.

    For bulk writes of events and view rows: SQLAlchemy's per-row parameter handling and
    per-call compilation were most of the time of replay and of large pushes. The statement is
    compiled once per engine dialect; rows must hold only text, integers, booleans, NULL and bytes,
    which every driver binds as they are.
    """
    # Keyed on the dialect object, not its name: two engines of one dialect name can still
    # compile differently (paramstyle, server version).
    per_dialect = _COMPILED.setdefault(connection.dialect, {})
    compiled = per_dialect.get(build)
    if compiled is None:
        statement = build(connection).compile(dialect=connection.dialect)
        names = statement.positiontup if statement.positional else None
        compiled = per_dialect[build] = (str(statement), names)
    sql, names = compiled
    if names is None:
        connection.exec_driver_sql(sql, rows)
    else:
        connection.exec_driver_sql(sql, [tuple(row[name] for name in names) for row in rows])


_COMPILED: weakref.WeakKeyDictionary[
    Dialect, dict[Callable[[Connection], Any], tuple[str, list[str] | None]]
] = weakref.WeakKeyDictionary()
