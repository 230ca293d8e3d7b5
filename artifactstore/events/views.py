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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import blake3
import cbor2
from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from artifactstore import schema
from artifactstore.errors import ManifestError
from artifactstore.events import log
from artifactstore.events.model import (
    FILE_INGESTED,
    PACKAGE_ABANDONED,
    PACKAGE_CREATED,
    PACKAGE_FINALIZED,
    RETENTION_ASSIGNED,
    Event,
)
from artifactstore.manifest import codec

_REPLAY_PAGE = 5000


def apply(connection: Connection, events: Sequence[Event]) -> None:
    """Bring the views up to date with events just appended (or being replayed)."""
    batch: list[Event] = []
    for event in events:
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
    value = codec.decode_value(event.payload)
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
            metadata=codec.encode_value(payload["metadata"]),
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
                "retrieval_tier": "hot",
                "restore_status": "available",
                "stored_at": payload["stored_at"],
                **digests,
            },
        )
    file_rows = list(files.values())
    connection.execute(
        delete(schema.artifact_files).where(
            schema.artifact_files.c.package_id == bindparam("b_package_id"),
            schema.artifact_files.c.path == bindparam("b_path"),
        ),
        [{"b_package_id": row["package_id"], "b_path": row["path"]} for row in file_rows],
    )
    connection.execute(insert(schema.artifact_files), file_rows)
    connection.execute(
        _insert_ignoring_duplicates(connection, schema.storage_locations), list(locations.values())
    )


def _insert_ignoring_duplicates(connection: Connection, table: Table) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def _package_finalized(connection: Connection, event: Event) -> None:
    manifest = codec.decode(event.payload)
    connection.execute(
        update(schema.artifact_packages)
        .where(schema.artifact_packages.c.id == event.package_id)
        .values(
            state="finalized",
            finalized_at=manifest.package.finalized_at,
            manifest_digest=str(codec.manifest_digest_of_bytes(event.payload)),
            manifest=event.payload,
        )
    )
    connection.execute(
        update(schema.retention_state)
        .where(schema.retention_state.c.package_id == event.package_id)
        .values(expires_at=manifest.retention.expires_at)
    )


def _package_abandoned(connection: Connection, event: Event) -> None:
    for table in (schema.retention_state, schema.artifact_files):
        connection.execute(delete(table).where(table.c.package_id == event.package_id))
    connection.execute(
        delete(schema.artifact_packages).where(schema.artifact_packages.c.id == event.package_id)
    )


_HANDLERS: dict[str, Callable[[Connection, Event], None]] = {
    PACKAGE_CREATED: _package_created,
    RETENTION_ASSIGNED: _retention_assigned,
    PACKAGE_FINALIZED: _package_finalized,
    PACKAGE_ABANDONED: _package_abandoned,
}


def state_digest(connection: Connection) -> str:
    """BLAKE3 over a canonical dump of every view row, table by table in primary-key order."""
    hasher = blake3.blake3()
    for table in schema.VIEW_TABLES:
        hasher.update(codec.encode_value(table.name))
        query = select(table).order_by(*table.primary_key.columns)
        for row in connection.execute(query):
            # Rows hold only text, integers, booleans, NULL and bytes, in arrays: for those,
            # cbor2's canonical mode is RFC 8949 §4.2.1 exactly (no maps, so no key order
            # question), and its C encoder is what keeps replay --check fast.
            hasher.update(cbor2.dumps(tuple(row), canonical=True))
    return str(hasher.hexdigest())


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did: events applied, and the state digest before and after."""

    events: int
    digest_before: str
    digest_after: str

    @property
    def identical(self) -> bool:
        """True when the rebuilt views equal the views that were there."""
        return self.digest_before == self.digest_after


def replay(connection: Connection) -> ReplayReport:
    """Rebuild every view table from the log inside the caller's transaction."""
    before = state_digest(connection)
    for table in reversed(schema.VIEW_TABLES):
        connection.execute(delete(table))
    count = 0
    page: list[Event] = []
    for event in log.read(connection, page=_REPLAY_PAGE):
        page.append(event)
        if len(page) == _REPLAY_PAGE:
            apply(connection, page)
            count += len(page)
            page = []
    apply(connection, page)
    count += len(page)
    return ReplayReport(count, before, state_digest(connection))
