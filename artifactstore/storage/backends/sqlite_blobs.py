"""Small blobs packed into one SQLite file, instead of one file each.

Creating a file costs far more than hashing a few KiB: on these machines the local backend
manages ~1,000 small objects per second, each needing a temp file, a link, an unlink and often a
new fan-out directory. This backend keeps objects in a table of `<root>/small-blobs.db`, so a
batch of thousands of small blobs costs one transaction and one fsync per 4 MiB (SQLite's own
comparison: sqlite.org/fasterthanfs.html). It is meant for objects up to a few hundred KiB;
the data plane routes larger ones to the local backend.

Writes with durable=False are held in memory (at most `_FLUSH_BYTES` at a time) and written in
one transaction when the batch is full or at `sync`; other processes see an object only once it
is committed. SQLite's transactions make every object appear whole or not at all, and WAL with
synchronous=FULL makes a commit durable when it returns.

Reads use a read-only connection, opened lazily and swapped for a read-write one when the first
write comes, so a store whose blob root is read-only (a snapshot, a read-only mount) can still
be verified and pulled, and a read never creates the database.
"""

from __future__ import annotations

import io
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from artifactstore.errors import BlobNotFoundError, StorageError
from artifactstore.permissions import make_directories
from artifactstore.storage.base import InMemoryStage, RootedBackend, utc
from artifactstore.storage.spi import (
    BackendHealth,
    ObjectInfo,
    StorageReceipt,
    check_key,
    check_range,
    storage_errors,
)

DATABASE_NAME = "small-blobs.db"
_FLUSH_BYTES = 4 << 20
"""Pending bytes that trigger a flush of non-durable writes, which keeps memory flat."""
_BUSY_TIMEOUT_MS = 120_000
_LOOKUP_CHUNK = 500
"""Keys per IN (...) lookup, well within SQLite's limit on bound parameters."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    stored_at REAL NOT NULL
)
"""


_backends: weakref.WeakSet[SQLiteBlobBackend] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    # SQLite forbids using a connection opened before fork() in the child; the child opens
    # its own on first use. The parent's is dropped, not closed: closing it could touch the
    # parent's database state from the child.
    for backend in list(_backends):
        backend._connection = None
        backend._writable = False
        backend._pending = {}
        backend._pending_bytes = 0
        backend._lock = threading.RLock()


os.register_at_fork(after_in_child=_forget_connections_after_fork)


class SQLiteBlobBackend(RootedBackend):
    """A StorageBackend keeping each object as a row of one SQLite database under root."""

    def __init__(self, root: Path, backend_id: str = "local-small") -> None:
        super().__init__(root, backend_id)
        # Built once: every query names it in the message it would fail with.
        self._path = root / DATABASE_NAME
        self._connection: sqlite3.Connection | None = None
        self._writable = False
        # (st_dev, st_ino) of the file the connection opened: health tells a replaced file.
        self._opened: tuple[int, int] | None = None
        # One connection per backend object, shared by threads under this lock.
        self._lock = threading.RLock()
        self._pending: dict[str, tuple[bytes, float]] = {}
        self._pending_bytes = 0
        _backends.add(self)

    @property
    def path(self) -> Path:
        """The database file holding the objects."""
        return self._path

    def stage(self) -> InMemoryStage:
        """Start a write buffered in memory; nothing is visible until commit."""
        return InMemoryStage(self._publish)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Bytes [start, end) of the object, clamped; BlobNotFoundError if absent."""
        check_key(key)
        check_range(key, start, end)
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                return io.BytesIO(pending[0][start:end])
            rows = self._query("SELECT data FROM blobs WHERE key = ?", (key,))
        if not rows:
            raise BlobNotFoundError(f"no object {key!r} in {self.path}")
        return io.BytesIO(bytes(rows[0][0])[start:end])

    def read_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The bytes of those of keys that are stored, by key: one query per chunk of keys.

        Every object is held in memory at once: the caller bounds their total size.
        """
        found: dict[str, bytes] = {}
        with self._lock:
            for key in keys:
                pending = self._pending.get(check_key(key))
                if pending is not None:
                    found[key] = pending[0]
            rest = [key for key in keys if key not in found]
            for start in range(0, len(rest), _LOOKUP_CHUNK):
                chunk = rest[start : start + _LOOKUP_CHUNK]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT key, data FROM blobs WHERE key IN ({marks})"
                found.update((key, bytes(data)) for key, data in self._query(sql, tuple(chunk)))
        return found

    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object under key, or None."""
        return self._head(check_key(key))

    def put(
        self, key: str, chunks: Iterable[bytes], *, durable: bool = True
    ) -> tuple[StorageReceipt, bool]:
        """Store the chunks under key (see StorageBackend): the bytes are in memory anyway, so
        without a staged object, and the key checked once (this runs once per small file)."""
        return self._publish(check_key(key), b"".join(chunks), durable)

    def put_many(self, items: list[tuple[str, bytes]]) -> list[tuple[StorageReceipt, bool]]:
        """put(key, [data], durable=False) of each item, in order, with one lookup of the keys
        already stored for all of them instead of one per key."""
        checked = [(check_key(key), data) for key, data in items]
        results: list[tuple[StorageReceipt, bool]] = []
        with self._lock:
            known = self._infos({key for key, _ in checked})
            for key, data in checked:
                info = known.get(key)
                if info is not None:
                    results.append(
                        (StorageReceipt(self._backend_id, key, info.size, info.modified_at), True)
                    )
                    continue
                receipt, _ = self._add(key, data, False)
                known[key] = ObjectInfo(key, receipt.size, receipt.stored_at)
                results.append((receipt, False))
        return results

    def _infos(self, keys: set[str]) -> dict[str, ObjectInfo]:
        """What _head says of each of keys that is stored or pending, a chunk of keys a query."""
        found = {
            key: ObjectInfo(key, len(pending[0]), utc(pending[1]))
            for key in keys
            if (pending := self._pending.get(key)) is not None
        }
        ordered = sorted(keys - found.keys())
        for start in range(0, len(ordered), _LOOKUP_CHUNK):
            chunk = ordered[start : start + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT key, length(data), stored_at FROM blobs WHERE key IN ({marks})"
            for key, size, stored_at in self._query(sql, tuple(chunk)):
                found[key] = ObjectInfo(key, int(size), utc(float(stored_at)))
        return found

    def _head(self, key: str) -> ObjectInfo | None:
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                return ObjectInfo(key, len(pending[0]), utc(pending[1]))
            rows = self._query("SELECT length(data), stored_at FROM blobs WHERE key = ?", (key,))
        return ObjectInfo(key, int(rows[0][0]), utc(float(rows[0][1]))) if rows else None

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        check_key(key)
        with self._lock:
            if self._pending.pop(key, None) is not None:
                return
            if self._database_exists():
                self._write([("DELETE FROM blobs WHERE key = ?", [(key,)])])

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove the objects in one transaction; missing keys are not an error."""
        checked: list[tuple[object, ...]] = [(check_key(key),) for key in keys]
        with self._lock:
            for (key,) in checked:
                self._pending.pop(str(key), None)
            if checked and self._database_exists():
                self._write([("DELETE FROM blobs WHERE key = ?", checked)])

    def iter_keys(self) -> Iterator[str]:
        """Yield every stored key in sorted order (committed and pending alike), reading the
        database a page at a time so that memory stays flat however many blobs it holds."""
        with self._lock:
            pending = sorted(self._pending)
        after = ""
        while True:
            with self._lock:
                page = [
                    row[0]
                    for row in self._query(
                        "SELECT key FROM blobs WHERE key > ? ORDER BY key LIMIT ?",
                        (after, _LOOKUP_CHUNK),
                    )
                ]
            for key in page:
                while pending and pending[0] < key:
                    yield pending.pop(0)
                if pending and pending[0] == key:
                    pending.pop(0)
                yield key
            if len(page) < _LOOKUP_CHUNK:
                yield from pending
                return
            after = page[-1]

    def sync(self, keys: Iterable[str]) -> None:
        """Write pending objects in one durable transaction; BlobNotFoundError for a missing key."""
        with self._lock:
            wanted = {check_key(key) for key in keys} - self._pending.keys()
            self._flush()
            missing = wanted - self._stored(wanted)
        if missing:
            raise BlobNotFoundError(f"no object {min(missing)!r} in {self.path} to sync")

    def _stored(self, keys: set[str]) -> set[str]:
        """The subset of keys committed to the database, looked up a chunk at a time."""
        ordered = sorted(keys)
        found: set[str] = set()
        for start in range(0, len(ordered), _LOOKUP_CHUNK):
            chunk = ordered[start : start + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = self._query(f"SELECT key FROM blobs WHERE key IN ({marks})", tuple(chunk))
            found.update(row[0] for row in rows)
        return found

    def health(self) -> BackendHealth:
        """Reachable if the database opens, its file is still the one in use and a new
        connection can read it; free and total bytes of its filesystem."""
        if not self._root.is_dir():
            return BackendHealth(
                self._backend_id, False, f"root {self._root} is missing", None, None
            )
        try:
            self._probe()
            stats = os.statvfs(self._root)
        except (StorageError, OSError) as exc:
            return BackendHealth(self._backend_id, False, str(exc), None, None)
        return BackendHealth(
            self._backend_id,
            True,
            f"database {self.path}",
            stats.f_bavail * stats.f_frsize,
            stats.f_blocks * stats.f_frsize,
        )

    def _probe(self) -> None:
        """Raise StorageError unless the file at the path is the open one and answers a query.

        The open connection would keep reading a deleted or replaced file (it holds the old
        inode) and its page cache would hide a file overwritten in place, so the query runs on
        a new read-only connection. No database yet (nothing stored) is healthy.
        """
        with self._lock:
            self._reader()
            opened = self._opened
        if opened is None:
            return
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise StorageError(
                f"small-blob database {self.path} was deleted while in use"
            ) from None
        if (stat.st_dev, stat.st_ino) != opened:
            raise StorageError(
                f"small-blob database {self.path} was replaced while in use; restart to use it"
            )
        with storage_errors(f"read small-blob database {self.path}"):
            probe = self._open_connection(writable=False)
            try:
                probe.execute("SELECT 1 FROM blobs LIMIT 1").fetchone()
            finally:
                probe.close()

    def close(self) -> None:
        """Write pending objects and close the database connection."""
        with self._lock:
            self._flush()
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _publish(self, key: str, data: bytes, durable: bool) -> tuple[StorageReceipt, bool]:
        with self._lock:
            existing = self._head(key)
            if existing is not None:
                if durable:
                    self._flush()  # it may be a pending non-durable write of our own
                receipt = StorageReceipt(self._backend_id, key, existing.size, existing.modified_at)
                return receipt, True
            return self._add(key, data, durable)

    def _add(self, key: str, data: bytes, durable: bool) -> tuple[StorageReceipt, bool]:
        """Write an object known to be absent (the lock held)."""
        now = datetime.now(UTC).timestamp()
        self._pending[key] = (data, now)
        self._pending_bytes += len(data)
        if durable or self._pending_bytes >= _FLUSH_BYTES:
            self._flush()
        return StorageReceipt(self._backend_id, key, len(data), utc(now)), False

    def _flush(self) -> None:
        if not self._pending:
            return
        rows: list[tuple[object, ...]] = [
            (key, data, stored_at) for key, (data, stored_at) in self._pending.items()
        ]
        # A concurrent writer may have stored the same blob: the first one stays.
        self._write([("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)", rows)])
        self._pending.clear()
        self._pending_bytes = 0

    def _database_exists(self) -> bool:
        with storage_errors(f"stat {self.path}"):
            return self.path.exists()

    def _reader(self) -> sqlite3.Connection | None:
        """The connection for reads (read-only until a write comes), or None while there is no
        database, or no table in it yet: then nothing is stored."""
        if self._connection is None:
            if not self._database_exists():
                return None
            with storage_errors(f"open small-blob database {self.path}"):
                connection = self._open_connection(writable=False)
                try:
                    found = connection.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blobs'"
                    ).fetchall()
                except BaseException:
                    connection.close()
                    raise
            if not found:
                # A writer in another process has just created the file; it holds no blob.
                connection.close()
                return None
            self._use(connection, writable=False)
        return self._connection

    def _writer(self) -> sqlite3.Connection:
        """The read-write connection, creating the database (and the root) on first use."""
        if self._connection is not None and self._writable:
            return self._connection
        with storage_errors(f"open small-blob database {self.path}"):
            make_directories(self._root)
            connection = self._open_connection(writable=True)
        if self._connection is not None:
            self._connection.close()
        return self._use(connection, writable=True)

    def _use(self, connection: sqlite3.Connection, writable: bool) -> sqlite3.Connection:
        """Make connection the backend's, noting which file it opened (see _probe)."""
        with storage_errors(f"stat {self.path}"):
            stat = self.path.stat()
        self._connection, self._writable = connection, writable
        self._opened = (stat.st_dev, stat.st_ino)
        return connection

    def _open_connection(self, writable: bool) -> sqlite3.Connection:
        """A configured connection; retried while another process is setting the file up.

        Switching a new file to WAL takes an exclusive lock for which SQLite does not always
        call the busy handler, so processes that open a new store at once can see "database
        is locked" here however long the busy timeout is.
        """
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        pause = 0.005
        immutable = False
        while True:
            connection = self._raw_connection(writable, immutable)
            try:
                connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                if writable:
                    connection.execute("PRAGMA journal_mode = WAL")
                    connection.execute("PRAGMA synchronous = FULL")
                    connection.execute(_SCHEMA)
                else:
                    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return connection
            except sqlite3.OperationalError as exc:
                connection.close()
                if not writable and not immutable and self._needs_immutable(exc):
                    immutable = True
                    continue
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.2)

    def _raw_connection(self, writable: bool, immutable: bool) -> sqlite3.Connection:
        if writable:
            return sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        uri = f"{self.path.absolute().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)

    def _needs_immutable(self, exc: sqlite3.OperationalError) -> bool:
        """True when a read-only open failed only because SQLite cannot create the -shm file of
        the WAL database on a read-only mount, and no -wal file holds changes.

        Nothing can write there (a snapshot), and the database file alone holds every
        committed blob, so it can be read as immutable. A directory that is only not writable
        for this user is not enough: another user may write blobs there later, which an
        immutable connection would never see.
        """
        # A read-only mount says CANTOPEN, a read-only directory READONLY_DIRECTORY: compare
        # the primary result codes (the low byte).
        if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
            return False
        wal = Path(f"{self.path}-wal")
        try:
            read_only_mount = bool(os.statvfs(self._root).f_flag & os.ST_RDONLY)
            return read_only_mount and (not wal.exists() or wal.stat().st_size == 0)
        except OSError:
            return False

    def _query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[Any]:
        """The rows of a read; none while there is no database yet (a read never creates it)."""
        with storage_errors(f"read small-blob database {self.path}"):
            connection = self._reader()
            return [] if connection is None else connection.execute(sql, parameters).fetchall()

    def _write(self, statements: list[tuple[str, list[tuple[object, ...]]]]) -> None:
        connection = self._writer()
        with storage_errors(f"write small-blob database {self.path}"):
            # IMMEDIATE: writers from other processes queue on the busy timeout.
            connection.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in statements:
                    connection.executemany(sql, rows)
                connection.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (a full disk does): then say why it failed,
                # not that there is no transaction to roll back.
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
