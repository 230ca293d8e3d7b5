"""Keeping blobs alive while garbage collection runs: the protocol both sides follow.

A push learns a blob's address only by hashing it, and the data plane skips the write of a
blob that is already stored; garbage collection (`gc`) may be deleting that very blob. Neither
side takes a lock that stops the other for long. The rules:

- Collection removes a blob in two steps: first, under the log lock, a `v1.blob.deleted`
  event takes it out of `storage_locations`; then, holding the *fence* exclusively, it checks
  again that no live upload session holds it and that no package names it, and only then
  removes the bytes.
- A writer opens its upload session before it writes anything, then holds its blobs in the
  session in a transaction that holds the fence shared (`hold`), and reads in that
  transaction which of them `storage_locations` lacks. Of those, the ones the writer found
  stored (and so did not write) can have lost their bytes between the write and the hold:
  after the hold commits it checks that each is still stored (`missing_after_hold`) and writes
  again the ones that are not. A blob held is never removed (collection checks the holds under
  the fence), and a blob removed before the hold is seen to be gone.
- Bytes the writer wrote itself are unlisted orphans until the hold; collection never takes
  an orphan written after the oldest live session opened (less a margin for clocks), and
  looks at each orphan again under the fence before removing it (another collection may have
  removed the old bytes, and the writer written them again, since it listed them), so it
  leaves them alone, with no check needed.

The fence is PostgreSQL's transaction-scoped advisory lock (shared for writers, exclusive for
collection); on SQLite every write transaction already excludes every other. Re-pushing an
unchanged tree costs no extra I/O: its blobs are all in `storage_locations`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, select, text

from artifactstore import schema, uploads
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane
from artifactstore.identity import ContentAddress

_FENCE_KEY = 0x6172_7466_6763
"""The advisory lock id of the fence (PostgreSQL)."""


def fence(connection: Connection, exclusive: bool = False) -> None:
    """Hold the garbage-collection fence until the transaction ends (see the module doc)."""
    if connection.dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    connection.execute(text(f"SELECT {function}(:key)"), {"key": _FENCE_KEY})


def unvouched(connection: Connection, addresses: Iterable[str]) -> list[str]:
    """The addresses `storage_locations` does not list: blobs collection may have removed."""
    wanted = sorted(set(addresses))
    locations = schema.storage_locations
    listed: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = select(locations.c.content_address).where(locations.c.content_address.in_(chunk))
        listed.update(connection.execute(query).scalars())
    return [address for address in wanted if address not in listed]


def hold(
    db: Database, session: str, addresses: Iterable[str], now: datetime | None = None
) -> list[str]:
    """Hold the blobs for the session (renewing it); returns the unvouched ones, which the
    caller must check with `missing_after_hold` now that they are held."""
    wanted = sorted(set(addresses))
    with db.write(lock=False) as connection:
        fence(connection)
        uploads.hold_addresses(connection, session, wanted, now or db.now())
        return unvouched(connection, wanted)


def missing_after_hold(dataplane: DataPlane, addresses: Iterable[str]) -> list[str]:
    """Which of the held, unvouched blobs are not stored (removed by collection before the
    hold): the caller stores them again."""
    return [a for a in addresses if dataplane.stat_object(ContentAddress.parse(a)) is None]


def keep_alive(
    db: Database, dataplane: DataPlane, session: str, found: Iterable[str], wrote: Iterable[str]
) -> list[str]:
    """Hold the blobs the writer found stored and those it wrote, for the session; returns
    those it found whose bytes are gone and must be stored again (rare: only when collection
    removed them between the dedup and the hold)."""
    deduped = set(found)
    unlisted = hold(db, session, deduped | set(wrote))
    return missing_after_hold(dataplane, [a for a in unlisted if a in deduped])
