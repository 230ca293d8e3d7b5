"""Upload sessions: the record that an ingest in flight holds blobs, and the files it staged.

A push hashes and stores its blobs first, with no package in sight; each batch it finishes is
recorded here (the blobs in `upload_session_blobs`, the file rows in `upload_session_files`)
before anything relies on them. Publishing reads the staged files back in pages, so memory
stays flat however many files a push has, and ends the session in the same transaction that
makes the package reference its blobs. A session that nobody ends (the process was killed)
expires; its blobs are then ordinary unreferenced blobs, for garbage collection to weigh.

Sessions are operational state, like the log head: not a view of the log, never replayed.
Garbage collection (a blob held by a live session is kept) and resumable HTTP uploads (blobs
held without staged files) hang off the same record.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, String, delete, func, insert, literal, select, update

from artifactstore import schema
from artifactstore.database import Database
from artifactstore.errors import ConflictError
from artifactstore.manifest.model import format_timestamp

SESSION_LIFETIME = timedelta(hours=24)
"""How long a session holds its blobs after it last staged something."""

_PAGE = 2000


@dataclass(frozen=True, slots=True)
class StagedFile:
    """One file a push has stored and staged: what its v1.file.ingested event will say."""

    path: str
    size: int
    blake3: str
    sha256: str
    executable: bool
    backend_id: str
    object_key: str
    stored_at: str


def open_session(connection: Connection, session_id: str, actor: str, now: datetime) -> None:
    """Record a new session, and forget sessions that expired before now."""
    sessions = schema.upload_sessions
    stamp = format_timestamp(now)
    connection.execute(delete(sessions).where(sessions.c.expires_at < stamp))
    connection.execute(
        insert(sessions).values(
            id=session_id,
            actor=actor,
            created_at=stamp,
            expires_at=format_timestamp(now + SESSION_LIFETIME),
        )
    )


def stage(
    connection: Connection, session_id: str, files: Iterable[StagedFile], now: datetime
) -> None:
    """Hold the files' blobs for the session and stage the files; renews the session."""
    rows = [_file_row(session_id, staged) for staged in files]
    blobs = {row["digest_primary"] for row in rows}
    held = [_held_row(session_id, f"blake3:{hex_}", None) for hex_ in blobs]
    if held:
        schema.execute_many(connection, _hold_blob, held)
    if rows:
        # A path staged again (a file listed twice cannot happen in one tree) replaces the row.
        schema.execute_many(connection, _stage_file, rows)
    _renew(connection, session_id, now)


def _renew(connection: Connection, session_id: str, now: datetime) -> None:
    sessions = schema.upload_sessions
    connection.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(expires_at=format_timestamp(now + SESSION_LIFETIME))
    )


def hold_addresses(
    connection: Connection, session_id: str, addresses: Iterable[str], now: datetime
) -> None:
    """Hold blobs by address for the session (what is known of them is left as it is)."""
    held = [_held_row(session_id, address, None) for address in addresses]
    if held:
        schema.execute_many(connection, _hold_blob, held)
    _renew(connection, session_id, now)


@dataclass(frozen=True, slots=True)
class BlobFacts:
    """What the store knows of one stored blob: enough to name it in a file entry."""

    content_address: str
    size: int
    sha256: str
    backend_id: str
    object_key: str
    stored_at: str


def hold_blobs(
    connection: Connection, session_id: str, blobs: Iterable[BlobFacts], now: datetime
) -> None:
    """Hold stored blobs for the session, with what is known of them; renews the session."""
    rows = [_held_row(session_id, facts.content_address, facts) for facts in blobs]
    if rows:
        schema.execute_many(connection, _hold_blob_facts, rows)
    _renew(connection, session_id, now)


def known_blobs(connection: Connection, addresses: Iterable[str]) -> dict[str, BlobFacts]:
    """What is known of each of the addresses: from the blobs packages name (storage_locations),
    else from what a live session's upload found; addresses known to neither are left out."""
    wanted = sorted(set(addresses))
    found: dict[str, BlobFacts] = {}
    locations, held = schema.storage_locations, schema.upload_session_blobs
    sessions = schema.upload_sessions
    for start in range(0, len(wanted), _PAGE):
        page = wanted[start : start + _PAGE]
        for row in connection.execute(
            select(locations).where(locations.c.content_address.in_(page))
        ):
            found[row.content_address] = _facts(row)
        rest = [address for address in page if address not in found]
        if rest:
            query = (
                select(held)
                .join(sessions, sessions.c.id == held.c.session_id)
                .where(held.c.content_address.in_(rest), held.c.size.is_not(None))
            )
            for row in connection.execute(query):
                found[row.content_address] = _facts(row)
    return found


def staged_files(connection: Connection, session_id: str) -> Iterator[list[StagedFile]]:
    """The session's staged files in pages, by the UTF-8 bytes of the path (manifest order)."""
    files = schema.upload_session_files
    path = schema.byte_order(files.c.path, connection)
    after: str | None = None
    while True:
        query = select(files).where(files.c.session_id == session_id).order_by(path).limit(_PAGE)
        if after is not None:
            query = query.where(path > after)
        page = [_staged(row) for row in connection.execute(query)]
        if page:
            yield page
        if len(page) < _PAGE:
            return
        after = page[-1].path


def staged_counts(connection: Connection, session_id: str) -> tuple[int, int, int]:
    """(files, distinct (blob, backend) pairs, distinct blobs) staged in the session."""
    files = schema.upload_session_files
    pairs = (
        select(files.c.digest_primary, files.c.backend_id)
        .where(files.c.session_id == session_id)
        .distinct()
        .subquery()
    )
    count = connection.execute(
        select(func.count()).where(files.c.session_id == session_id)
    ).scalar_one()
    blobs = connection.execute(
        select(func.count(), func.count(pairs.c.digest_primary.distinct()))
    ).one()
    return int(count), int(blobs[0]), int(blobs[1])


def staged_receipts(connection: Connection, session_id: str) -> Iterator[tuple[str, str, str]]:
    """(content address, backend id, stored at) of each distinct blob the session staged, by
    address then backend id: stored at is the storage location's where one stands (the first
    receipt stands), else the earliest the session staged."""
    files, locations = schema.upload_session_files, schema.storage_locations
    staged = (
        select(
            files.c.digest_primary.label("hex"),
            files.c.backend_id,
            func.min(files.c.stored_at).label("stored_at"),
        )
        .where(files.c.session_id == session_id)
        .group_by(files.c.digest_primary, files.c.backend_id)
        .subquery()
    )
    address = literal("blake3:", String) + staged.c.hex
    query = (
        select(
            address, staged.c.backend_id, func.coalesce(locations.c.stored_at, staged.c.stored_at)
        )
        .select_from(
            staged.outerjoin(
                locations,
                (locations.c.content_address == address)
                & (locations.c.backend_id == staged.c.backend_id),
            )
        )
        .order_by(
            schema.byte_order(staged.c.hex, connection),
            schema.byte_order(staged.c.backend_id, connection),
        )
    )
    for rows in connection.execute(query.execution_options(yield_per=_PAGE)).partitions():
        for row in rows:
            yield str(row[0]), str(row[1]), str(row[2])


def require_session(connection: Connection, session_id: str) -> None:
    """ConflictError if the session has ended: it expired (no progress for SESSION_LIFETIME)
    and was swept, and its staged files and holds went with it."""
    sessions = schema.upload_sessions
    found = connection.execute(select(sessions.c.id).where(sessions.c.id == session_id)).first()
    if found is None:
        raise ConflictError(
            "the upload session of this push ended before its publish (it made no progress "
            f"for {SESSION_LIFETIME // timedelta(hours=1)} hours, so it expired and was "
            "swept); nothing was published: push again"
        )


def end_session(connection: Connection, session_id: str) -> None:
    """Drop the session with its held blobs and staged files; a missing session is no error."""
    connection.execute(
        delete(schema.upload_sessions).where(schema.upload_sessions.c.id == session_id)
    )


def _hold_blob(connection: Connection) -> Any:
    return schema.dialect_insert(connection)(schema.upload_session_blobs).on_conflict_do_nothing()


def _hold_blob_facts(connection: Connection) -> Any:
    statement = schema.dialect_insert(connection)(schema.upload_session_blobs)
    columns = ("size", "digest_sha256", "backend_id", "object_key", "stored_at")
    return statement.on_conflict_do_update(
        index_elements=["session_id", "content_address"],
        set_={name: statement.excluded[name] for name in columns},
    )


def _held_row(session_id: str, address: str, facts: BlobFacts | None) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "content_address": address,
        "size": None if facts is None else facts.size,
        "digest_sha256": None if facts is None else facts.sha256,
        "backend_id": None if facts is None else facts.backend_id,
        "object_key": None if facts is None else facts.object_key,
        "stored_at": None if facts is None else facts.stored_at,
    }


def _facts(row: Any) -> BlobFacts:
    return BlobFacts(
        content_address=row.content_address,
        size=int(row.size),
        sha256=row.digest_sha256,
        backend_id=row.backend_id,
        object_key=row.object_key,
        stored_at=row.stored_at,
    )


def _stage_file(connection: Connection) -> Any:
    statement = schema.dialect_insert(connection)(schema.upload_session_files)
    columns = [c.name for c in schema.upload_session_files.columns if not c.primary_key]
    return statement.on_conflict_do_update(
        index_elements=["session_id", "path"],
        set_={name: statement.excluded[name] for name in columns},
    )


def _file_row(session_id: str, staged: StagedFile) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "path": staged.path,
        "size": staged.size,
        "digest_primary": staged.blake3,
        "digest_sha256": staged.sha256,
        "executable": staged.executable,
        "backend_id": staged.backend_id,
        "object_key": staged.object_key,
        "stored_at": staged.stored_at,
    }


def _staged(row: Any) -> StagedFile:
    return StagedFile(
        path=row.path,
        size=int(row.size),
        blake3=row.digest_primary,
        sha256=row.digest_sha256,
        executable=bool(row.executable),
        backend_id=row.backend_id,
        object_key=row.object_key,
        stored_at=row.stored_at,
    )


@contextmanager
def held(db: Database, actor: str | None = None) -> Iterator[str]:
    """A new upload session (its id) that holds the blobs staged in it until the block ends."""
    session = str(uuid.uuid4())
    with db.write(lock=False) as connection:
        open_session(connection, session, actor or db.actor, db.now())
    try:
        yield session
    finally:
        with db.write(lock=False) as connection:
            end_session(connection, session)
