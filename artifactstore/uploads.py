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

from sqlalchemy import Connection, delete, insert, select, update

from artifactstore import schema
from artifactstore.database import Database
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
    held = [{"session_id": session_id, "content_address": f"blake3:{hex_}"} for hex_ in blobs]
    if held:
        schema.execute_many(connection, _hold_blob, held)
    if rows:
        # A path staged again (a file listed twice cannot happen in one tree) replaces the row.
        schema.execute_many(connection, _stage_file, rows)
    sessions = schema.upload_sessions
    connection.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(expires_at=format_timestamp(now + SESSION_LIFETIME))
    )


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


def end_session(connection: Connection, session_id: str) -> None:
    """Drop the session with its held blobs and staged files; a missing session is no error."""
    connection.execute(
        delete(schema.upload_sessions).where(schema.upload_sessions.c.id == session_id)
    )


def _hold_blob(connection: Connection) -> Any:
    return schema.dialect_insert(connection)(schema.upload_session_blobs).on_conflict_do_nothing()


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
