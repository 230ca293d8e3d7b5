"""Periodic maintenance for a server: expiry then garbage collection, by one process at a time.

Every gunicorn worker of `serve --maintenance-interval` runs a thread that wakes each interval
and tries to take the `maintenance` lease, a row in `leases` (a database lease, so it holds
across hosts sharing one PostgreSQL database, not a file lock on one). The holder renews it
each run; if it dies, the lease lapses after two intervals and another worker takes over. Two
runs at once would be safe (collection is safe beside anything), only wasteful.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert, or_, update

from artifactstore import gc, lifecycle, schema
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane
from artifactstore.errors import ArtifactStoreError, ConflictError
from artifactstore.manifest.model import format_timestamp

LEASE = "maintenance"
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one maintenance run did: packages expired, and what collection removed."""

    expired: int
    collected: gc.GcReport


def take_lease(db: Database, name: str, holder: str, lasting: timedelta) -> bool:
    """Take (or renew) the lease name for holder until now + lasting, unless another holder's
    lease is still running; True if holder has it now."""
    leases = schema.leases
    now = db.now()
    until = format_timestamp(now + lasting)
    with db.write(lock=False) as connection:
        taken = connection.execute(
            update(leases)
            .where(
                leases.c.name == name,
                or_(leases.c.holder == holder, leases.c.expires_at < format_timestamp(now)),
            )
            .values(holder=holder, expires_at=until)
        )
        if taken.rowcount:
            return True
    try:
        with db.write(lock=False) as connection:
            connection.execute(insert(leases).values(name=name, holder=holder, expires_at=until))
    except ConflictError:
        return False  # another holder inserted it first
    return True


def run(
    db: Database, dataplane: DataPlane, holder: str, interval: timedelta, grace: timedelta
) -> MaintenanceReport | None:
    """Expire and collect if holder gets the lease; None if another holder has it."""
    if not take_lease(db, LEASE, holder, 2 * interval):
        return None
    expired = sum(1 for _ in lifecycle.expire(db, actor=f"maintenance:{holder}"))
    collected = gc.collect(db, dataplane, grace, actor=f"maintenance:{holder}")
    return MaintenanceReport(expired, collected)


def start_maintenance(
    maintain: Callable[[], MaintenanceReport | None], interval: timedelta
) -> threading.Thread:
    """A daemon thread that calls maintain every interval and logs what it did or why not."""

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(interval.total_seconds()):
            try:
                report = maintain()
            except ArtifactStoreError as exc:
                _log.warning("maintenance failed: %s", exc)
                continue
            if report is not None:
                done = report.collected
                _log.info(
                    "maintenance: expired %d package(s); gc freed %d blob(s), %d bytes",
                    report.expired,
                    done.objects,
                    done.bytes,
                )

    thread = threading.Thread(target=loop, name="artifactstore-maintenance", daemon=True)
    thread.start()
    return thread
