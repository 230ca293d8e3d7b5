"""The views as a fold over the log: how each event changes the view tables.

The store changes view tables only by appending events and applying them here, and replay
(`events.replay`) applies the same events the same way, so a rebuilt view is identical to the
one it replaces.

Payloads (canonical CBOR maps unless said otherwise):

- `v1.package.created`: name, version, metadata (map); the package id is on the event row.
- `v1.retention.assigned`: class; on a finalized package also expires_at (or null), the
  expiry recomputed for the new class.
- `v1.file.ingested`: path, size, blake3, sha256 (hex), executable, backend_id, object_key,
  stored_at. A later event for the same path replaces the file.
- `v1.package.finalized`: the canonical CBOR manifest itself. A package that has no file
  rows when it is finalized (a push publishes without a `v1.file.ingested` event per file)
  gets its file rows, and the storage locations of their blobs, from the manifest's files and
  receipts (see `_listed_files`); one that has them (assembled file by file) keeps them, and
  the manifest, encoded from those rows, lists the same files.
- `v1.package.abandoned`, `v1.package.expired`, `v1.package.deleted`: an empty map; the
  package's files leave the views, its row stays with a tombstone in `package_ends`.
- `v1.hold.placed`: reason; `v1.hold.released`: an empty map.
- `v1.blob.deleted`: content_address, backend_id (null for an orphan the registry never
  listed), object_key, size; no package id. The blob leaves `storage_locations`; its bytes are
  removed after the event commits.
- `v1.token.created`: name, scope, prefix (or null), secret_sha256 (hex), expires_at (or null);
  no package id. Never the secret.
- `v1.token.revoked`: name; the token keeps its row, with revoked_at set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from artifactstore import cbor, schema
from artifactstore.errors import ManifestError
from artifactstore.events import listed
from artifactstore.events.model import (
    BLOB_DELETED,
    FILE_INGESTED,
    HOLD_PLACED,
    HOLD_RELEASED,
    PACKAGE_ABANDONED,
    PACKAGE_CREATED,
    PACKAGE_DELETED,
    PACKAGE_EXPIRED,
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


def apply(connection: Connection, events: Sequence[Event | SpooledEvent]) -> None:
    """Bring the views up to date with events just appended (or being replayed).

    Runs of events of one batched kind (files ingested, packages ended, blobs deleted) are
    applied with one statement per table, through the driver's executemany.
    """
    batch: list[Event] = []

    def flush() -> None:
        if batch:
            _BATCHED[batch[0].event_type](connection, batch)
            batch.clear()

    for event in events:
        if isinstance(event, SpooledEvent):
            # Only a manifest is large enough to be spooled.
            if event.event_type != PACKAGE_FINALIZED:
                raise ManifestError(f"event {event.sequence} of type {event.event_type} is spooled")
            flush()
            _finalized(
                connection, event.sequence, event.package_id, event.payload, event.occurred_at
            )
            continue
        batched = _BATCHED.get(event.event_type)
        if batch and batched is not _BATCHED[batch[0].event_type]:
            flush()
        if batched is not None:
            batch.append(event)
            continue
        _HANDLERS[event.event_type](connection, event)
    flush()


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
    retention = schema.retention_state
    if "expires_at" not in payload:
        connection.execute(
            insert(retention).values(
                package_id=event.package_id,
                retention_class=payload["class"],
                assigned_at=event.occurred_at,
            )
        )
        return
    connection.execute(
        update(retention)
        .where(retention.c.package_id == event.package_id)
        .values(
            retention_class=payload["class"],
            assigned_at=event.occurred_at,
            expires_at=payload["expires_at"],
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
    schema.execute_many(connection, listed.insert_location, list(locations.values()))


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


def _package_finalized(connection: Connection, event: Event) -> None:
    _finalized(connection, event.sequence, event.package_id, event.payload, event.occurred_at)


def _finalized(
    connection: Connection,
    sequence: int,
    package_id: str | None,
    manifest: bytes | SpooledPayload,
    occurred_at: str,
) -> None:
    files = schema.artifact_files
    has_files = connection.execute(
        select(files.c.path).where(files.c.package_id == package_id).limit(1)
    ).first()
    # A package without file rows takes them from the manifest (`listed`): its receipts are
    # read in the same walk as its times.
    receipts: list[Any] | None = None if has_files else []
    if isinstance(manifest, bytes):
        digest = manifest_digest_of_bytes(manifest)
    else:
        digest = manifest_digest_of_chunks(manifest.chunks())
    with listed.readable(manifest) as source:
        finalized_at, expires_at = _manifest_times(sequence, source, receipts)
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
    if receipts is not None:
        listed.insert_files(connection, sequence, package_id, manifest, occurred_at, receipts)


def _manifest_times(
    sequence: int, manifest: bytes | BinaryIO, receipts: list[Any] | None = None
) -> tuple[str, str | None]:
    """finalized_at and expires_at of the manifest an event carries, read without its files
    (its raw storage receipts appended to receipts, if given)."""
    try:
        parts = reader.outline(manifest, receipts)
        return parts["package"]["finalized_at"], parts["retention_summary"]["expires_at"]
    except (ManifestError, KeyError, TypeError) as exc:
        raise ManifestError(f"event {sequence} does not carry a v1 manifest: {exc}") from exc


def _packages_ended(connection: Connection, events: Sequence[Event]) -> None:
    ids = [{"package_id": event.package_id} for event in events]
    schema.execute_many(connection, _delete_files, ids)
    ends = [
        {
            "package_id": event.package_id,
            "state": _ENDS[event.event_type],
            "ended_at": event.occurred_at,
        }
        for event in events
    ]
    schema.execute_many(connection, _insert_end, ends)


def _delete_files(_connection: Connection) -> Any:
    files = schema.artifact_files
    return delete(files).where(files.c.package_id == bindparam("package_id"))


def _insert_end(_connection: Connection) -> Any:
    return insert(schema.package_ends)


_ENDS = {
    PACKAGE_ABANDONED: "abandoned",
    PACKAGE_EXPIRED: "expired",
    PACKAGE_DELETED: "deleted",
}


def _hold_placed(connection: Connection, event: Event) -> None:
    _set_hold(connection, event.package_id, _payload(event)["reason"], event.occurred_at)


def _hold_released(connection: Connection, event: Event) -> None:
    _set_hold(connection, event.package_id, None, None)


def _set_hold(
    connection: Connection, package_id: str | None, reason: str | None, since: str | None
) -> None:
    retention = schema.retention_state
    connection.execute(
        update(retention)
        .where(retention.c.package_id == package_id)
        .values(hold_reason=reason, held_at=since)
    )


def _blobs_deleted(connection: Connection, events: Sequence[Event]) -> None:
    rows = []
    for event in events:
        payload = _payload(event)
        rows.append(
            {"content_address": payload["content_address"], "backend_id": payload["backend_id"]}
        )
    schema.execute_many(connection, _delete_location, rows)


def _delete_location(_connection: Connection) -> Any:
    locations = schema.storage_locations
    return delete(locations).where(
        locations.c.content_address == bindparam("content_address"),
        locations.c.backend_id == bindparam("backend_id"),
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
    HOLD_PLACED: _hold_placed,
    HOLD_RELEASED: _hold_released,
    TOKEN_CREATED: _token_created,
    TOKEN_REVOKED: _token_revoked,
}

_BATCHED: dict[str, Callable[[Connection, Sequence[Event]], None]] = {
    FILE_INGESTED: _apply_files,
    PACKAGE_ABANDONED: _packages_ended,
    PACKAGE_EXPIRED: _packages_ended,
    PACKAGE_DELETED: _packages_ended,
    BLOB_DELETED: _blobs_deleted,
}
