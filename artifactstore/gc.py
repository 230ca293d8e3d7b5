"""Garbage collection: removing the blobs no live package or upload session needs.

A blob is garbage when no open or finalized package names it (ended packages' files leave
`artifact_files`), no live upload session holds it, and it was stored longer ago than the
grace period. Two kinds are found, a page of _PAGE at a time so memory stays flat: blobs
`storage_locations` lists (an anti-join in the database), and orphans, bytes in storage the
registry never listed (a killed push's, or a collection killed after its events).

Each page goes in two steps (`liveness` explains why that is safe while pushes run): its
`v1.blob.deleted` events commit first, under the log lock; then, under the fence, each blob
is checked again and its bytes removed. A run killed at any instant leaves either events
whose bytes remain, which are orphans the next run removes, or nothing. Expired upload
sessions and stale temp objects are swept too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, exists, func, select

from artifactstore import cbor, liveness, schema
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane
from artifactstore.events.model import BLOB_DELETED
from artifactstore.identity import ContentAddress
from artifactstore.manifest.model import format_timestamp, parse_timestamp

DEFAULT_GRACE = timedelta(hours=1)
CLOCK_MARGIN = timedelta(minutes=10)
"""How far the clocks of hosts and object stores may disagree: an orphan must be older by this
than the oldest live upload session to be taken (`liveness`)."""
_PAGE = 500


@dataclass(frozen=True, slots=True)
class Garbage:
    """One blob to remove: its address, the backend and key it is stored under (no backend
    id for an orphan the registry never listed), its size."""

    content_address: str
    backend_id: str | None
    object_key: str
    size: int


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a collection removed (or, dry, would remove)."""

    objects: int
    bytes: int
    orphans: int
    sessions: int
    temp_objects: int
    dry_run: bool


def collect(
    db: Database,
    dataplane: DataPlane,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> GcReport:
    """Remove every garbage blob older than grace (see the module doc); with dry_run only
    count them. progress, if given, is called with each blob's size as it goes."""
    now = db.now()
    cutoff = format_timestamp(now - grace)
    sessions = 0 if dry_run else _end_expired_sessions(db)
    objects = size = orphans = 0
    oldest = _oldest_session(db)
    orphaned = cutoff if oldest is None else min(cutoff, oldest)
    for kind, garbage in (
        ("listed", _listed(db, cutoff)),
        ("orphan", _orphans(db, dataplane, orphaned)),
    ):
        for page in garbage:
            removed = page if dry_run else _remove(db, dataplane, page, actor, orphaned)
            objects += len(removed)
            size += sum(blob.size for blob in removed)
            orphans += len(removed) if kind == "orphan" else 0
            if progress is not None:
                for blob in removed:
                    progress(blob.size)
    temp = 0 if dry_run else dataplane.clean_stale_temp(max(grace, timedelta(hours=1)))
    return GcReport(objects, size, orphans, sessions, temp, dry_run)


def _listed(db: Database, cutoff: str) -> Iterator[list[Garbage]]:
    """Pages of unneeded blobs that storage_locations lists, stored before cutoff."""
    locations = schema.storage_locations
    after = ""
    while True:
        with db.read() as connection:
            query = (
                select(locations)
                .where(
                    locations.c.content_address > after,
                    locations.c.stored_at < cutoff,
                    ~_referenced(locations.c.content_address),
                    ~_held(locations.c.content_address, db),
                )
                .order_by(locations.c.content_address, locations.c.backend_id)
                .limit(_PAGE)
            )
            page = [
                Garbage(row.content_address, row.backend_id, row.object_key, int(row.size))
                for row in connection.execute(query)
            ]
        if page:
            yield page
        if len(page) < _PAGE:
            return
        after = page[-1].content_address


def _oldest_session(db: Database) -> str | None:
    """When the oldest live upload session opened, less CLOCK_MARGIN; None if there is none.

    A writer may not have held yet what it wrote since its session opened."""
    sessions = schema.upload_sessions
    with db.read() as connection:
        oldest = connection.execute(
            select(func.min(sessions.c.created_at)).where(
                sessions.c.expires_at > format_timestamp(db.now())
            )
        ).scalar()
    if oldest is None:
        return None
    return format_timestamp(parse_timestamp(oldest) - CLOCK_MARGIN)


def _orphans(db: Database, dataplane: DataPlane, cutoff: str) -> Iterator[list[Garbage]]:
    """Pages of stored blobs the registry does not list and no session holds, stored before
    cutoff (by the storage's own time)."""
    for addresses in _pages(dataplane.stored_addresses()):
        with db.read() as connection:
            unknown = _unlisted(connection, db, [str(a) for a in addresses])
        page = []
        for address in unknown:
            info = dataplane.stat_object(ContentAddress.parse(address))
            if info is not None and format_timestamp(info.modified_at) < cutoff:
                page.append(Garbage(address, None, info.key, info.size))
        if page:
            yield page


def _remove(
    db: Database, dataplane: DataPlane, page: list[Garbage], actor: str | None, orphaned: str
) -> list[Garbage]:
    """Record the page's deletions, then remove the bytes of those still unneeded.

    An orphan is looked at again under the fence, and removed only if it is still stored
    from before orphaned: another collection may have removed it since this page was read,
    and a writer stored it again, which holds it only afterwards (`liveness`)."""
    with db.write() as connection:
        # Under the log lock: what a publish committed since the page was read is not garbage.
        unneeded = set(_unneeded(connection, db, [b.content_address for b in page]))
        listed = _listed_now(connection, [b.content_address for b in page])
        page = [
            blob
            for blob in page
            if blob.content_address in unneeded
            and (blob.content_address in listed) == (blob.backend_id is not None)
        ]
        if page:
            db.record(connection, [_event(db, blob, actor) for blob in page])
    if not page:
        return []
    with db.write(lock=False) as connection:
        liveness.fence(connection, exclusive=True)
        addresses = [blob.content_address for blob in page]
        listed = _listed_now(connection, addresses)
        still = set(_unneeded(connection, db, addresses)) - listed
        orphans = [blob.content_address for blob in page if blob.backend_id is None]
        still -= set(orphans) - set(_stored_before(dataplane, orphans, orphaned))
        dataplane.delete_objects(
            ContentAddress.parse(blob.content_address)
            for blob in page
            if blob.content_address in still
        )
    return [blob for blob in page if blob.content_address in still]


def _stored_before(dataplane: DataPlane, addresses: list[str], cutoff: str) -> list[str]:
    """The addresses whose blobs are stored, and were stored before cutoff."""
    stored = []
    for address in addresses:
        info = dataplane.stat_object(ContentAddress.parse(address))
        if info is not None and format_timestamp(info.modified_at) < cutoff:
            stored.append(address)
    return stored


def _event(db: Database, blob: Garbage, actor: str | None) -> Any:
    payload = {
        "content_address": blob.content_address,
        "backend_id": blob.backend_id,
        "object_key": blob.object_key,
        "size": blob.size,
    }
    return db.event(BLOB_DELETED, None, cbor.encode(payload), actor)


def _unlisted(connection: Connection, db: Database, addresses: list[str]) -> list[str]:
    """The addresses that are unneeded and that storage_locations does not list."""
    listed = _listed_now(connection, addresses)
    return [a for a in _unneeded(connection, db, addresses) if a not in listed]


def _unneeded(connection: Connection, db: Database, addresses: list[str]) -> list[str]:
    """The addresses no package names and no live upload session holds."""
    if not addresses:
        return []
    files, held = schema.artifact_files, schema.upload_session_blobs
    sessions = schema.upload_sessions
    now = format_timestamp(db.now())
    needed = set(
        connection.execute(
            select(files.c.content_address).where(files.c.content_address.in_(addresses))
        ).scalars()
    )
    needed.update(
        connection.execute(
            select(held.c.content_address)
            .join(sessions, sessions.c.id == held.c.session_id)
            .where(held.c.content_address.in_(addresses), sessions.c.expires_at > now)
        ).scalars()
    )
    return [address for address in addresses if address not in needed]


def _listed_now(connection: Connection, addresses: list[str]) -> set[str]:
    locations = schema.storage_locations
    query = select(locations.c.content_address).where(locations.c.content_address.in_(addresses))
    return set(connection.execute(query).scalars())


def _referenced(address: Any) -> Any:
    files = schema.artifact_files
    return exists().where(files.c.content_address == address)


def _held(address: Any, db: Database) -> Any:
    held, sessions = schema.upload_session_blobs, schema.upload_sessions
    return (
        exists()
        .where(held.c.content_address == address)
        .where(sessions.c.id == held.c.session_id)
        .where(sessions.c.expires_at > format_timestamp(db.now()))
    )


def _end_expired_sessions(db: Database) -> int:
    sessions = schema.upload_sessions
    with db.write(lock=False) as connection:
        result = connection.execute(
            delete(sessions).where(sessions.c.expires_at < format_timestamp(db.now()))
        )
    return int(result.rowcount)


def _pages(addresses: Iterator[ContentAddress]) -> Iterator[list[ContentAddress]]:
    page: list[ContentAddress] = []
    for address in addresses:
        page.append(address)
        if len(page) == _PAGE:
            yield page
            page = []
    if page:
        yield page
