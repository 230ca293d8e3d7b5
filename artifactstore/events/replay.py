"""Replay: rebuilding every view from the log, and the state digest that compares views.

Replay applies the log's events with `views.apply`, the same fold the writer uses, so a
rebuilt view is identical to the one it replaces; `state_digest` and `fingerprints` say
whether it is, and where it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import blake3
from sqlalchemy import Connection, delete, select

from artifactstore import cbor, schema
from artifactstore.errors import LogIntegrityError
from artifactstore.events import log
from artifactstore.events.checker import LogChecker, LogProblem
from artifactstore.events.model import Event
from artifactstore.events.views import apply

_REPLAY_PAGE = 5000
_DIGEST_PAGE = 2000


def state_digest(connection: Connection) -> str:
    """BLAKE3 over a canonical dump of every view row, table by table in primary-key order.

    The dump is, per table, the canonical CBOR of its name and then of its rows as arrays of
    column values, in pages of _DIGEST_PAGE rows. Values are what the driver returns (SQLite
    gives booleans as 0/1), so digests compare within one database, not across databases.
    """
    hasher = blake3.blake3()
    for table in schema.VIEW_TABLES:
        hasher.update(cbor.encode(table.name))
        query = select(table).order_by(*table.primary_key.columns)
        result = connection.exec_driver_sql(str(query.compile(dialect=connection.dialect)))
        for rows in result.partitions(_DIGEST_PAGE):
            hasher.update(cbor.encode([tuple(row) for row in rows]))
    return str(hasher.hexdigest())


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did: events applied, the state digest before and after, what differed.

    `differences` names each table and package (or blob) whose rows differ from the log's, when
    replay was only checking; `problems` lists what a forced replay skipped over.
    """

    events: int
    digest_before: str
    digest_after: str
    differences: tuple[str, ...] = ()
    problems: tuple[LogProblem, ...] = ()

    @property
    def identical(self) -> bool:
        """True when the rebuilt views equal the views that were there."""
        return self.digest_before == self.digest_after


def replay(connection: Connection, check: bool = False, force: bool = False) -> ReplayReport:
    """Rebuild every view table from the log inside the caller's transaction.

    The caller holds the log's write lock. A log with a gap, a broken chain or an event the
    package rules forbid raises LogIntegrityError naming the first bad sequence (the caller's
    transaction then rolls back, views untouched) unless force is set; then rule-breaking
    events are skipped and listed. With check, the rebuild is undone before returning (the
    caller rolls back too) and the differences are named.
    """
    head = log.read_head(connection)
    before = state_digest(connection)
    rebuild = connection.begin_nested() if check else None
    for table in reversed(schema.VIEW_TABLES):
        connection.execute(delete(table))
    checker = LogChecker()
    problems: list[LogProblem] = []
    count = 0
    page: list[Event] = []
    for event in log.read(connection, until=head.sequence, page=_REPLAY_PAGE):
        found = checker.check(event)
        problems.extend(found)
        if found and not force:
            raise LogIntegrityError(_refusal(found[0]))
        if any(problem.kind == "rule" for problem in found):
            continue
        page.append(event)
        count += 1
        if len(page) == _REPLAY_PAGE:
            apply(connection, page)
            page = []
    apply(connection, page)
    found = checker.finish(head.sequence, head.chain_digest)
    problems.extend(found)
    if found and not force:
        raise LogIntegrityError(_refusal(found[0]))
    after = state_digest(connection)
    differences: tuple[str, ...] = ()
    if rebuild is not None:
        if after != before:
            rebuilt, names = fingerprints(connection), package_names(connection)
            rebuild.rollback()
            differences = _differences(fingerprints(connection), rebuilt, names)
        else:
            rebuild.rollback()
    return ReplayReport(count, before, after, differences, tuple(problems))


def _refusal(problem: LogProblem) -> str:
    return (
        f"the event log is broken at sequence {problem.sequence} ({problem.message}); "
        "refusing to rebuild the views from it (replay --force rebuilds anyway)"
    )


_GROUPED_BY = {
    schema.artifact_packages.name: "id",
    schema.artifact_files.name: "package_id",
    schema.retention_state.name: "package_id",
    schema.package_ends.name: "package_id",
    schema.storage_locations.name: "content_address",
    schema.tokens.name: "name",
}


def fingerprints(connection: Connection) -> dict[tuple[str, str], str]:
    """A digest of the view rows per (table, package id, content address or token name)."""
    hashers: dict[tuple[str, str], Any] = {}
    for table in schema.VIEW_TABLES:
        column = _GROUPED_BY[table.name]
        key_index = [c.name for c in table.columns].index(column)
        query = select(table).order_by(*table.primary_key.columns)
        result = connection.exec_driver_sql(str(query.compile(dialect=connection.dialect)))
        for rows in result.partitions(_DIGEST_PAGE):
            for row in rows:
                key = (table.name, str(row[key_index]))
                hasher = hashers.get(key)
                if hasher is None:
                    hasher = hashers[key] = blake3.blake3()
                hasher.update(cbor.encode(tuple(row)))
    return {key: str(hasher.hexdigest()) for key, hasher in hashers.items()}


def package_names(connection: Connection) -> dict[str, str]:
    """'name:version' of every package in the views, by id."""
    packages = schema.artifact_packages
    rows = connection.execute(select(packages.c.id, packages.c.name, packages.c.version))
    return {row.id: f"{row.name}:{row.version}" for row in rows}


def _differences(
    original: dict[tuple[str, str], str], rebuilt: dict[tuple[str, str], str], names: dict[str, str]
) -> tuple[str, ...]:
    found = []
    changed = (k for k in original.keys() | rebuilt.keys() if original.get(k) != rebuilt.get(k))
    for table, key in sorted(changed):
        if table == schema.storage_locations.name:
            what = f"blob {key}"
        elif table == schema.tokens.name:
            what = f"token {key}"
        else:
            what = f"package {names[key]}" if key in names else f"package id {key}"
        if (table, key) not in rebuilt:
            change = "has rows the log does not have"
        elif (table, key) not in original:
            change = "lacks rows the log has"
        else:
            change = "differs from the log"
        found.append(f"{table}: {what} {change}")
    return tuple(found)
