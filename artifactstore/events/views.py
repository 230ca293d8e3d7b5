"""The views as a fold over the log: applying events, replaying them, and the state digest.

The store changes view tables only by appending events and applying them here, and replay
applies the same events the same way, so a rebuilt view is identical to the one it replaces.

Payloads (canonical CBOR maps unless said otherwise):

- `v1.package.created`: name, version, metadata (map); the package id is on the event row.
- `v1.retention.assigned`: class.
- `v1.file.ingested`: path, size, blake3, sha256 (hex), executable, backend_id, object_key,
  stored_at. A later event for the same path replaces the file.
- `v1.package.finalized`: the canonical CBOR manifest itself.
- `v1.package.abandoned`: an empty map; the open package and its files leave the views.
- `v1.token.created`: name, scope, prefix (or null), secret_sha256 (hex), expires_at (or null);
  no package id. Never the secret.
- `v1.token.revoked`: name; the token keeps its row, with revoked_at set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import blake3
from sqlalchemy import Connection, delete, insert, select, update

from artifactstore import cbor, schema
from artifactstore.errors import LogIntegrityError, ManifestError
from artifactstore.events import log
from artifactstore.events.checker import LogChecker, LogProblem
from artifactstore.events.model import (
    FILE_INGESTED,
    PACKAGE_ABANDONED,
    PACKAGE_CREATED,
    PACKAGE_FINALIZED,
    RETENTION_ASSIGNED,
    TOKEN_CREATED,
    TOKEN_REVOKED,
    Event,
    SpooledEvent,
    SpooledPayload,
)
from artifactstore.manifest import reader
from artifactstore.manifest.model import manifest_digest_of_bytes, manifest_digest_of_chunks

_REPLAY_PAGE = 5000
_DIGEST_PAGE = 2000


def apply(connection: Connection, events: Sequence[Event | SpooledEvent]) -> None:
    """Bring the views up to date with events just appended (or being replayed)."""
    batch: list[Event] = []
    for event in events:
        if isinstance(event, SpooledEvent):
            # Only a manifest is large enough to be spooled.
            if event.event_type != PACKAGE_FINALIZED:
                raise ManifestError(f"event {event.sequence} of type {event.event_type} is spooled")
            if batch:
                _apply_files(connection, batch)
                batch = []
            _finalized(connection, event.sequence, event.package_id, event.payload)
            continue
        if event.event_type == FILE_INGESTED:
            batch.append(event)
            continue
        if batch:
            _apply_files(connection, batch)
            batch = []
        _HANDLERS[event.event_type](connection, event)
    if batch:
        _apply_files(connection, batch)


def _payload(event: Event) -> dict[str, Any]:
    # Payloads were encoded canonically by the store and are covered by the hash chain
    # (verify_chain proves them), so the views decode them trusted (cbor2's C decoder); the
    # strict decoder costs ~10x more and would dominate replay.
    try:
        value = cbor.decode_trusted(event.payload)
    except ManifestError as exc:
        raise ManifestError(f"event {event.sequence} payload is not CBOR: {exc}") from exc
    if not isinstance(value, dict):
        raise ManifestError(f"event {event.sequence} payload is not a map")
    return value


def _package_created(connection: Connection, event: Event) -> None:
    payload = _payload(event)
    connection.execute(
        insert(schema.artifact_packages).values(
            id=event.package_id,
            name=payload["name"],
            version=payload["version"],
            state="open",
            metadata=cbor.encode(payload["metadata"]),
            created_at=event.occurred_at,
        )
    )


def _retention_assigned(connection: Connection, event: Event) -> None:
    payload = _payload(event)
    connection.execute(
        insert(schema.retention_state).values(
            package_id=event.package_id,
            retention_class=payload["class"],
            assigned_at=event.occurred_at,
        )
    )


def _apply_files(connection: Connection, events: Sequence[Event]) -> None:
    files: dict[tuple[str | None, str], dict[str, Any]] = {}
    locations: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        payload = _payload(event)
        address = f"blake3:{payload['blake3']}"
        digests = {
            "digest_algorithm": "blake3",
            "digest_primary": payload["blake3"],
            "digest_sha256": payload["sha256"],
            "content_address": address,
            "size": payload["size"],
        }
        # A later event for the same path wins, as it would applied one at a time.
        files[(event.package_id, payload["path"])] = {
            "package_id": event.package_id,
            "path": payload["path"],
            "executable": payload["executable"],
            "backend_id": payload["backend_id"],
            "ingested_at": event.occurred_at,
            **digests,
        }
        locations.setdefault(
            (address, payload["backend_id"]),
            {
                "backend_id": payload["backend_id"],
                "object_key": payload["object_key"],
                "stored_at": payload["stored_at"],
                **digests,
            },
        )
    schema.execute_many(connection, _upsert_file, list(files.values()))
    schema.execute_many(connection, _insert_location, list(locations.values()))


def _upsert_file(connection: Connection) -> Any:
    statement = schema.dialect_insert(connection)(schema.artifact_files)
    replaced = {
        column.name: statement.excluded[column.name]
        for column in schema.artifact_files.columns
        if not column.primary_key
    }
    return statement.on_conflict_do_update(
        index_elements=[c.name for c in schema.artifact_files.primary_key.columns],
        set_=replaced,
    )


def _insert_location(connection: Connection) -> Any:
    # The first receipt of a blob on a backend stands; later ingests of it change nothing.
    return schema.dialect_insert(connection)(schema.storage_locations).on_conflict_do_nothing()


def _package_finalized(connection: Connection, event: Event) -> None:
    _finalized(connection, event.sequence, event.package_id, event.payload)


def _finalized(
    connection: Connection,
    sequence: int,
    package_id: str | None,
    manifest: bytes | SpooledPayload,
) -> None:
    if isinstance(manifest, bytes):
        digest = manifest_digest_of_bytes(manifest)
        finalized_at, expires_at = _manifest_times(sequence, manifest)
    else:
        digest = manifest_digest_of_chunks(manifest.chunks())
        manifest.file.seek(0)
        finalized_at, expires_at = _manifest_times(sequence, manifest.file)
    connection.execute(
        update(schema.artifact_packages)
        .where(schema.artifact_packages.c.id == package_id)
        .values(state="finalized", finalized_at=finalized_at, manifest_digest=str(digest))
    )
    connection.execute(
        update(schema.retention_state)
        .where(schema.retention_state.c.package_id == package_id)
        .values(expires_at=expires_at)
    )


def _manifest_times(sequence: int, manifest: bytes | BinaryIO) -> tuple[str, str | None]:
    """finalized_at and expires_at of the manifest an event carries, read without its lists."""
    try:
        parts = reader.small_maps(manifest)
        return parts["package"]["finalized_at"], parts["retention_summary"]["expires_at"]
    except (ManifestError, KeyError, TypeError) as exc:
        raise ManifestError(f"event {sequence} does not carry a v1 manifest: {exc}") from exc


def _package_abandoned(connection: Connection, event: Event) -> None:
    for table in (schema.retention_state, schema.artifact_files):
        connection.execute(delete(table).where(table.c.package_id == event.package_id))
    connection.execute(
        delete(schema.artifact_packages).where(schema.artifact_packages.c.id == event.package_id)
    )


def _token_created(connection: Connection, event: Event) -> None:
    payload = _payload(event)
    connection.execute(
        insert(schema.tokens).values(
            name=payload["name"],
            scope=payload["scope"],
            prefix=payload["prefix"],
            secret_sha256=payload["secret_sha256"],
            created_at=event.occurred_at,
            expires_at=payload["expires_at"],
        )
    )


def _token_revoked(connection: Connection, event: Event) -> None:
    connection.execute(
        update(schema.tokens)
        .where(schema.tokens.c.name == _payload(event)["name"])
        .values(revoked_at=event.occurred_at)
    )


_HANDLERS: dict[str, Callable[[Connection, Event], None]] = {
    PACKAGE_CREATED: _package_created,
    RETENTION_ASSIGNED: _retention_assigned,
    PACKAGE_FINALIZED: _package_finalized,
    PACKAGE_ABANDONED: _package_abandoned,
    TOKEN_CREATED: _token_created,
    TOKEN_REVOKED: _token_revoked,
}


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
