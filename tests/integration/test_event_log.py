"""The event log on a real database: gapless, commit-ordered, chained, tailable, replayable."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, insert, text, update

from artifactstore import cbor, schema
from artifactstore.events import log, replay
from artifactstore.events.model import Event, NewEvent

WRITER = textwrap.dedent(
    """
    import sys, uuid
    from artifactstore import schema
    from artifactstore.events import log
    from artifactstore.events.model import NewEvent

    url, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = schema.make_engine(url)
    for n in range(count):
        with schema.writer(engine).begin() as connection:
            log.write(connection, [NewEvent(str(uuid.uuid4()), "test.appended",
                "2026-11-29T00:00:00.000000Z", worker, None, b"\\xa0")])
    engine.dispose()
    """
)


def new_event(n: int = 0) -> NewEvent:
    return NewEvent(
        event_id=str(uuid.uuid4()),
        event_type="test.appended",
        occurred_at="2026-11-29T16:17:26.123456Z",
        actor="tests",
        package_id=None,
        payload=cbor.encode({"n": n}),
    )


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    built = schema.make_engine(migrated_url)
    yield built
    built.dispose()


def append(engine: Engine, count: int) -> None:
    with schema.writer(engine).begin() as connection:
        log.write(connection, [new_event(n) for n in range(count)])


def sequences(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [event.sequence for event in log.read(connection)]


def test_sequences_start_at_one_and_chain_from_genesis(engine: Engine) -> None:
    append(engine, 3)
    with engine.connect() as connection:
        stored = list(log.read(connection))
        report = log.verify_chain(connection)
    assert [e.sequence for e in stored] == [1, 2, 3]
    assert report.ok and report.checked == 3


def test_rolled_back_transaction_leaves_no_gap(engine: Engine) -> None:
    append(engine, 2)
    with pytest.raises(RuntimeError), schema.writer(engine).begin() as connection:
        log.write(connection, [new_event(), new_event()])
        raise RuntimeError("abort mid-way")
    append(engine, 1)
    assert sequences(engine) == [1, 2, 3]
    with engine.connect() as connection:
        assert log.verify_chain(connection).ok


def test_tampered_payload_is_found_by_verify_chain(engine: Engine) -> None:
    append(engine, 5)
    with engine.begin() as connection:
        connection.execute(
            update(schema.events)
            .where(schema.events.c.sequence == 3)
            .values(payload=cbor.encode({"n": 999}))
        )
    with engine.connect() as connection:
        report = log.verify_chain(connection)
    assert not report.ok
    assert report.first_bad_sequence == 3
    assert [problem.sequence for problem in report.problems] == [3]


def test_tampered_actor_is_found_by_verify_chain(engine: Engine) -> None:
    append(engine, 2)
    with engine.begin() as connection:
        connection.execute(
            update(schema.events).where(schema.events.c.sequence == 2).values(actor="mallory")
        )
    with engine.connect() as connection:
        assert log.verify_chain(connection).first_bad_sequence == 2


def test_deleted_last_event_is_found_by_the_head(engine: Engine) -> None:
    append(engine, 3)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM events WHERE sequence = 3"))
    with engine.connect() as connection:
        report = log.verify_chain(connection)
    assert not report.ok and "head" in (report.problem or "")


def test_payload_bytes_reach_the_reader_unchanged(engine: Engine) -> None:
    payload = cbor.encode({"path": "bin/app", "size": 7})
    with schema.writer(engine).begin() as connection:
        log.write(
            connection,
            [NewEvent("e-1", "test.appended", "2026-11-29T16:17:26.123456Z", "t", None, payload)],
        )
    [event] = list(log.tail(engine, since=0))
    assert event.payload == payload


@pytest.mark.slow
def test_concurrent_writers_and_a_tail_reader_see_every_event_once(
    engine: Engine, migrated_url: str
) -> None:
    seen: list[int] = []

    def follow() -> None:
        for event in log.tail(engine, since=0, follow=True, timeout=90):
            seen.append(event.sequence)
            if len(seen) == 2000:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, migrated_url, f"worker-{n}", "500"])
        for n in range(4)
    ]
    assert [w.wait(timeout=180) for w in writers] == [0, 0, 0, 0]
    reader.join(timeout=120)
    assert seen == list(range(1, 2001))
    assert sequences(engine) == list(range(1, 2001))
    with engine.connect() as connection:
        report = log.verify_chain(connection)
        actors = connection.execute(
            text("SELECT actor, COUNT(*) FROM events GROUP BY actor ORDER BY actor")
        ).all()
    assert report.ok and report.checked == 2000
    assert [tuple(row) for row in actors] == [(f"worker-{n}", 500) for n in range(4)]


def test_follow_stops_at_the_timeout(engine: Engine) -> None:
    append(engine, 1)
    assert [e.sequence for e in log.tail(engine, since=0, follow=True, timeout=0.3)] == [1]


def test_replay_of_an_empty_log_empties_the_views(engine: Engine) -> None:
    with schema.writer(engine).begin() as connection:
        # A package row the log never mentioned (written straight into the view).
        connection.execute(
            insert(schema.artifact_packages).values(
                id="p-1",
                name="acme/ghost",
                version="1",
                state="open",
                metadata=cbor.encode({}),
                created_at="2026-11-30T00:00:00.000000Z",
            )
        )
    with schema.writer(engine).begin() as connection:
        report = replay.replay(connection)
        rows = connection.execute(text("SELECT count(*) FROM artifact_packages")).scalar()
    assert report.events == 0
    assert not report.identical
    assert rows == 0


def test_events_columns_are_the_event_fields_in_order() -> None:
    # log.read builds Event(*row) from the table's columns: the two orders must not drift.
    assert [column.name for column in schema.events.columns] == [
        field.name for field in dataclasses.fields(Event)
    ]
