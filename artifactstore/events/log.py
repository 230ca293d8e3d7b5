"""The append-only event log: append inside a transaction, read, follow and verify.

Every write transaction serializes on the single `event_log_head` row, and takes it first,
before it reads the state it checks (`lock_head`: SELECT ... FOR UPDATE on PostgreSQL, where
each later statement at READ COMMITTED then sees everything committed before the lock was
granted; on SQLite the write lock that BEGIN IMMEDIATE already holds). The next sequence
number is only handed out after the previous holder commits, so sequences are gapless (a
rollback also rolls back the head) and commit-ordered (a reader tailing `since N` can never
miss a later-committed N+1), and a state check and the events it leads to are one step.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy.exc
from sqlalchemy import Connection, Engine, func, insert, select, text, update

from artifactstore import schema
from artifactstore.errors import PackageFinalizedError, PackageStateError
from artifactstore.events.checker import (
    FINALIZED,
    LIFECYCLE,
    LogChecker,
    LogProblem,
    RuleError,
    next_state,
)
from artifactstore.events.model import (
    PACKAGE_FINALIZED,
    Event,
    NewEvent,
    SpooledEvent,
    seal,
)

NOTIFY_CHANNEL = "artifactstore_events"
_PAGE = 1000
_SQLITE_POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class LogHead:
    """The last event of the log: its sequence (0 when empty) and its chain digest."""

    sequence: int
    chain_digest: str


def lock_head(connection: Connection) -> LogHead:
    """Take the log's write lock for the caller's transaction and return the head.

    Call it before reading any state a write depends on; it is held until commit or rollback.
    """
    return _head(connection, for_update=True)


def read_head(connection: Connection) -> LogHead:
    """The head as the caller's transaction sees it, without locking."""
    return _head(connection, for_update=False)


def _head(connection: Connection, for_update: bool) -> LogHead:
    query = select(
        schema.event_log_head.c.last_sequence, schema.event_log_head.c.chain_digest
    ).where(schema.event_log_head.c.id == 1)
    row = connection.execute(query.with_for_update() if for_update else query).one()
    return LogHead(int(row.last_sequence), str(row.chain_digest))


def write(connection: Connection, new_events: Sequence[NewEvent]) -> list[Event | SpooledEvent]:
    """Append events in the caller's transaction and return them sealed (sequence, chain).

    A spooled payload (the manifest of a large package) is copied from its file in pieces.
    """
    if not new_events:
        return []
    head = lock_head(connection)
    _check_rules(connection, new_events)
    sequence, previous = head.sequence, head.chain_digest
    sealed: list[Event | SpooledEvent] = []
    for new_event in new_events:
        sequence += 1
        event = seal(sequence, previous, new_event)
        previous = event.chain_digest
        sealed.append(event)
    rows = [_row(event) for event in sealed if isinstance(event, Event)]
    if rows:
        schema.execute_many(connection, _insert_events, rows)
    for event in sealed:
        if isinstance(event, SpooledEvent):
            _insert_spooled(connection, event)
    connection.execute(
        update(schema.event_log_head)
        .where(schema.event_log_head.c.id == 1)
        .values(last_sequence=sequence, chain_digest=previous)
    )
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return sealed


def _check_rules(connection: Connection, new_events: Sequence[NewEvent]) -> None:
    """Refuse events the package rules forbid, judging by the log rather than the views."""
    states = package_states(connection, {e.package_id for e in new_events if e.package_id})
    for new_event in new_events:
        if new_event.package_id is None:
            continue
        state = states.get(new_event.package_id)
        try:
            states[new_event.package_id] = next_state(state, new_event.event_type)
        except RuleError as exc:
            error = PackageFinalizedError if state == FINALIZED else PackageStateError
            raise error(
                f"the event log refuses this change to package {new_event.package_id}: {exc}"
            ) from None


def package_states(connection: Connection, package_ids: Iterable[str]) -> dict[str, str]:
    """The state of each package as the log says (checker's OPEN, FINALIZED, HELD or an end)."""
    events = schema.events
    ids = sorted(set(package_ids))
    if not ids:
        return {}
    rows = connection.execute(
        select(events.c.package_id, events.c.event_type)
        .where(events.c.package_id.in_(ids), events.c.event_type.in_(LIFECYCLE))
        .order_by(events.c.sequence)
    )
    states: dict[str, str] = {}
    for package_id, event_type in rows:
        states[package_id] = next_state(states.get(package_id), event_type)
    return states


def _insert_events(_connection: Connection) -> Any:
    return insert(schema.events)


_EVENT_FIELDS = tuple(field.name for field in dataclasses.fields(Event))
"""The columns of `events`, in order (a test pins them to the table)."""


def _row(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in _EVENT_FIELDS}


def _insert_spooled(connection: Connection, event: SpooledEvent) -> None:
    """Insert an event whose payload is in a file without holding the payload whole, on SQLite.

    The row goes in with a zero blob of the payload's size, which SQLite stores without
    building it in memory because the payload is the row's last column, and the payload is
    then written into it in pieces through SQLite's incremental blob I/O. PostgreSQL binds the
    payload as one value (there is no incremental write of a bytea).
    """
    row = {name: getattr(event, name) for name in _EVENT_FIELDS if name != "payload"}
    payload = event.payload
    if connection.dialect.name != "sqlite":
        connection.execute(insert(schema.events), {**row, "payload": b"".join(payload.chunks())})
        return
    result = connection.execute(
        insert(schema.events).values(**row, payload=func.zeroblob(payload.size))
    )
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)  # the sqlite dialect's driver connection
    with (
        _driver_errors(connection.engine),
        driver.blobopen(schema.events.name, "payload", result.lastrowid) as blob,
    ):
        for piece in payload.chunks():
            blob.write(piece)


def read(
    connection: Connection, since: int = 0, until: int | None = None, page: int = _PAGE
) -> Iterator[Event]:
    """Yield stored events with since < sequence (<= until), in order, a page at a time."""
    while True:
        query = (
            select(schema.events)
            .where(schema.events.c.sequence > since)
            .order_by(schema.events.c.sequence)
            .limit(page)
        )
        if until is not None:
            query = query.where(schema.events.c.sequence <= until)
        # Straight through the driver (the bounds are integers, rendered inline): SQLAlchemy's
        # row processing was a fifth of replay's time. Columns come in table order, which is
        # Event's field order.
        sql = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        rows = connection.exec_driver_sql(str(sql)).all()
        for row in rows:
            yield Event(*row)
        if len(rows) < page:
            return
        since = int(rows[-1][0])


def finalize_event(connection: Connection, package_id: str) -> Event | None:
    """The v1.package.finalized event of a package (its payload is the manifest), or None."""
    events = schema.events
    # The sequence first, from the index alone, then the row by its key: ordering whole rows
    # made SQLite sort a copy of the payload (the manifest, 43 MB for 100,000 files).
    first = (
        select(func.min(events.c.sequence))
        .where(events.c.package_id == package_id, events.c.event_type == PACKAGE_FINALIZED)
        .scalar_subquery()
    )
    row = connection.execute(select(events).where(events.c.sequence == first)).first()
    return None if row is None else Event(*row)


def tail(
    engine: Engine, since: int = 0, follow: bool = False, timeout: float | None = None
) -> Iterator[Event]:
    """Yield events after `since`; with follow, wait for new ones until timeout (None: forever).

    PostgreSQL wakes on LISTEN/NOTIFY; SQLite polls. Each event is yielded exactly once.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    if follow and engine.dialect.name == "postgresql":
        yield from _tail_postgresql(engine, since, deadline)
        return
    while True:
        with engine.connect() as connection:
            for event in read(connection, since):
                since = event.sequence
                yield event
        if not follow or _expired(deadline):
            return
        time.sleep(
            _SQLITE_POLL_SECONDS
            if deadline is None
            else min(_SQLITE_POLL_SECONDS, max(0.0, deadline - time.monotonic()))
        )


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _tail_postgresql(engine: Engine, since: int, deadline: float | None) -> Iterator[Event]:
    with _driver_errors(engine):
        # Unlike engine.connect(), raw_connection() lets the driver's connect error through.
        raw = engine.raw_connection()
    listener = raw.driver_connection
    assert listener is not None  # a pooled psycopg connection always has its driver
    # The listener leaves the pool for good: put back in autocommit with LISTEN on, it would
    # hand the next writer a connection whose "transaction" commits statement by statement.
    raw.detach()
    try:
        with _driver_errors(engine):
            listener.autocommit = True
            # LISTEN before the first read, so an event committed in between still wakes us.
            listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        while True:
            with engine.connect() as connection:
                for event in read(connection, since):
                    since = event.sequence
                    yield event
            if _expired(deadline):
                return
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            with _driver_errors(engine):
                for _ in listener.notifies(timeout=wait, stop_after=1):
                    pass
    finally:
        raw.close()


@contextmanager
def _driver_errors(engine: Engine) -> Iterator[None]:
    """Wrap errors of the driver's own connection (the listener, outside SQLAlchemy: the server
    stopped, the connection cut) as SQLAlchemy wraps them, for the caller's database.errors."""
    driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    try:
        yield
    except driver_error as exc:
        raise sqlalchemy.exc.DBAPIError.instance(None, None, exc, driver_error) from exc


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking the log: how many events were checked and what broke."""

    checked: int
    problems: tuple[LogProblem, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every event chained correctly, kept the rules, and the head agrees."""
        return not self.problems

    @property
    def first_bad_sequence(self) -> int | None:
        """The sequence of the first problem, or None."""
        return self.problems[0].sequence if self.problems else None

    @property
    def problem(self) -> str | None:
        """The first problem as text, or None."""
        return str(self.problems[0]) if self.problems else None


def verify_chain(
    connection: Connection, checkpoints: Mapping[int, str] | None = None
) -> ChainReport:
    """Check the log up to its head: gapless, chained from genesis, rules kept, checkpoints held.

    The head is read first and the events up to it after, so a writer appending meanwhile
    (whose events come after the head read) never looks like damage.
    """
    head = read_head(connection)
    checker = LogChecker(checkpoints or {})
    problems: list[LogProblem] = []
    checked = 0
    for event in read(connection, until=head.sequence):
        problems.extend(checker.check(event))
        checked += 1
    problems.extend(checker.finish(head.sequence, head.chain_digest))
    return ChainReport(checked, tuple(problems))
