"""The database error boundary: SQLAlchemy and driver errors become ours here, and only here.

Every path that talks to the registry database (the store's transactions, opening a store,
following the log, migrating) runs inside `errors(url)`, the way httpx maps its transport's
errors at one edge: a unique or foreign-key violation becomes ConflictError (two writers
raced), anything else DatabaseError, with the URL's password hidden and the driver's message
cut to its first line (the rest can quote SQL and parameters). `Database` holds the
transactions the store and its recipes (push, publish, ingest, audit) run in, and a forked
child gets fresh connections for each (`_forget_connections_after_fork`).
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy import Connection, Engine

from artifactstore import schema
from artifactstore.config import redact_url
from artifactstore.errors import ConflictError, DatabaseError
from artifactstore.events import log, views
from artifactstore.events.model import Event, NewEvent, SpooledEvent, SpooledPayload
from artifactstore.manifest.model import format_timestamp


@contextmanager
def errors(redacted_url: str, doing: str = "") -> Iterator[None]:
    """Translate database errors raised inside the block; doing says what failed ('migrate')."""
    try:
        yield
    except sqlalchemy.exc.IntegrityError as exc:
        raise ConflictError(f"a concurrent change conflicted with this one: {reason(exc)}") from exc
    except sqlalchemy.exc.SQLAlchemyError as exc:
        what = f"cannot {doing} database" if doing else "database"
        raise DatabaseError(f"{what} {redacted_url}: {reason(exc)}") from exc


def reason(exc: sqlalchemy.exc.SQLAlchemyError) -> str:
    """The driver's message without SQL text or parameters (which may hold secrets)."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return redact_url(text[0]) if text else type(exc).__name__


def utc_now() -> datetime:
    """The current time in UTC: the store's clock, unless a caller gives another."""
    return datetime.now(UTC)


def default_actor() -> str:
    """Who writes when the caller names no one: 'user@host'."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


_open_databases: weakref.WeakSet[Database] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    # A child must not use the parent's database connections (SQLAlchemy's advice for
    # multiprocessing): drop them from the pool without closing the parent's sockets.
    for db in list(_open_databases):
        db.engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_connections_after_fork)


class Database:
    """The registry database as the store's recipes use it: transactions inside the error
    boundary, and the writer of new events (who and when, then log and views together)."""

    def __init__(
        self, engine: Engine, redacted_url: str, actor: str, now: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        self.url = redacted_url
        self.actor = actor
        self.now = now
        self._writer = schema.writer(engine)
        _open_databases.add(self)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A plain read transaction; it never takes the write lock."""
        with errors(self.url), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self, lock: bool = True) -> Iterator[Connection]:
        """A write transaction; with lock (the default) it holds the log lock from the start."""
        with errors(self.url), self._writer.begin() as connection:
            if lock:
                log.lock_head(connection)
            yield connection

    def event(
        self,
        event_type: str,
        package_id: str | None,
        payload: bytes | SpooledPayload,
        actor: str | None = None,
        occurred_at: str | None = None,
    ) -> NewEvent:
        """A new event by actor (default: the store's) at occurred_at (default: now)."""
        return NewEvent(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            occurred_at=occurred_at or format_timestamp(self.now()),
            actor=actor or self.actor,
            package_id=package_id,
            payload=payload,
        )

    def record(
        self, connection: Connection, new_events: list[NewEvent]
    ) -> list[Event | SpooledEvent]:
        """Append events to the log (rules checked) and apply them to the views."""
        sealed = log.write(connection, new_events)
        views.apply(connection, sealed)
        return sealed
