"""The append-only event log: append inside a transaction, read, follow and verify.

Appends serialize on the single `event_log_head` row (SELECT ... FOR UPDATE on PostgreSQL; the
write lock taken by BEGIN IMMEDIATE on SQLite). The next sequence number is only handed out
after the previous holder commits, so sequences are gapless (a rollback also rolls back the
head) and commit-ordered (a reader tailing `since N` can never miss a later-committed N+1).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text, update

from artifactstore import schema
from artifactstore.events.model import Event, NewEvent, canonical_bytes, chain_digest, seal

NOTIFY_CHANNEL = "artifactstore_events"
_PAGE = 1000
_SQLITE_POLL_SECONDS = 0.05


def write(connection: Connection, new_events: Sequence[NewEvent]) -> list[Event]:
    """Append events in the caller's transaction and return them sealed (sequence, chain)."""
    if not new_events:
        return []
    head = connection.execute(
        select(schema.event_log_head.c.last_sequence, schema.event_log_head.c.chain_digest)
        .where(schema.event_log_head.c.id == 1)
        .with_for_update()
    ).one()
    sequence, previous = int(head.last_sequence), str(head.chain_digest)
    sealed = []
    for new_event in new_events:
        sequence += 1
        event = seal(sequence, previous, new_event)
        previous = event.chain_digest
        sealed.append(event)
    schema.execute_many(connection, _insert_events, [_row(event) for event in sealed])
    connection.execute(
        update(schema.event_log_head)
        .where(schema.event_log_head.c.id == 1)
        .values(last_sequence=sequence, chain_digest=previous)
    )
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return sealed


def _insert_events(_connection: Connection) -> Any:
    return insert(schema.events)


def _row(event: Event) -> dict[str, Any]:
    return {
        "sequence": event.sequence,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "occurred_at": event.occurred_at,
        "actor": event.actor,
        "package_id": event.package_id,
        "payload": event.payload,
        "chain_digest": event.chain_digest,
    }


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
    raw = engine.raw_connection()
    try:
        listener = raw.driver_connection
        assert listener is not None  # a pooled psycopg connection always has its driver
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
            for _ in listener.notifies(timeout=wait, stop_after=1):
                pass
    finally:
        raw.close()


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of re-computing the hash chain: how far it held and where it broke."""

    checked: int
    first_bad_sequence: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        """True when every event chained correctly and the head agrees."""
        return self.first_bad_sequence is None and self.problem is None


def verify_chain(connection: Connection) -> ChainReport:
    """Recompute every chain digest from genesis; report the first bad sequence, if any."""
    previous = schema.GENESIS_CHAIN_DIGEST
    expected_sequence = 0
    for event in read(connection):
        expected_sequence += 1
        if event.sequence != expected_sequence:
            return ChainReport(
                expected_sequence - 1,
                expected_sequence,
                f"sequence {expected_sequence} is missing (next stored is {event.sequence})",
            )
        actual = chain_digest(previous, canonical_bytes(event.sequence, event))
        if actual != event.chain_digest:
            return ChainReport(
                expected_sequence - 1,
                event.sequence,
                f"event {event.sequence} ({event.event_type}) does not match its chain digest",
            )
        previous = actual
    head = connection.execute(
        select(schema.event_log_head.c.last_sequence, schema.event_log_head.c.chain_digest)
    ).one()
    if (int(head.last_sequence), head.chain_digest) != (expected_sequence, previous):
        return ChainReport(
            expected_sequence,
            None,
            f"log head says sequence {head.last_sequence} but the log ends at {expected_sequence}",
        )
    return ChainReport(expected_sequence, None, None)
