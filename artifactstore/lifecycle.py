"""How finalized packages end: retention changes, holds, expiry and deletion.

Each change is one write transaction under the log lock that reads the package's state and
records its event, so a racing writer cannot slip past a hold. A package under a hold, or of
the `legal-hold` class, never ends; an ended package keeps its tombstone (`package_ends`), so
its version is never reused. Expiry works in batches of _BATCH packages, one transaction each,
so memory stays flat and a killed run has ended whole batches only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Connection

from artifactstore import cbor, registry, retention, trust
from artifactstore.database import Database
from artifactstore.errors import InvalidInputError, PackageHeldError, PackageStateError
from artifactstore.events.model import (
    HOLD_PLACED,
    HOLD_RELEASED,
    PACKAGE_DELETED,
    PACKAGE_EXPIRED,
    RETENTION_ASSIGNED,
)
from artifactstore.manifest.model import format_timestamp
from artifactstore.records import LEGAL_HOLD, Package, PackageRef

MAX_REASON = 1024
_BATCH = 500


def change_retention(db: Database, ref: PackageRef, class_name: str, actor: str | None) -> Package:
    """Give a finalized package another retention class; its expiry is recomputed from its
    finalize time. The same class again changes nothing."""
    with db.write() as connection:
        package = _finalized(connection, ref)
        if package.retention_class == class_name:
            return package
        kept = registry.retention_class(connection, class_name)
        assert package.finalized_at is not None  # a finalized package has its time
        payload = {
            "class": class_name,
            "expires_at": retention.expires_at(package.finalized_at, kept.keep_days),
        }
        db.record(
            connection, [db.event(RETENTION_ASSIGNED, package.id, cbor.encode(payload), actor)]
        )
        return registry.get_package(connection, package.id)


def hold(db: Database, ref: PackageRef, reason: str, actor: str | None) -> Package:
    """Place a hold on a finalized package: it cannot expire or be deleted until released.

    Holding it again with the same reason changes nothing; another reason is PackageHeldError.
    """
    reason = _check_reason(reason)
    with db.write() as connection:
        package = _finalized(connection, ref)
        if package.hold_reason == reason:
            return package
        if package.hold_reason is not None:
            raise PackageHeldError(
                f"package {package} is already held ({package.hold_reason!r}); unhold it first"
            )
        payload = cbor.encode({"reason": reason})
        db.record(connection, [db.event(HOLD_PLACED, package.id, payload, actor)])
        return registry.get_package(connection, package.id)


def unhold(db: Database, ref: PackageRef, actor: str | None) -> Package:
    """Release a package's hold; a package without one is left as it is."""
    with db.write() as connection:
        package = _finalized(connection, ref)
        if package.hold_reason is None:
            return package
        db.record(connection, [db.event(HOLD_RELEASED, package.id, cbor.encode({}), actor)])
        return registry.get_package(connection, package.id)


def delete(db: Database, ref: PackageRef, actor: str | None) -> Package:
    """End a finalized package now (its tombstone says deleted); refused under a hold."""
    with db.write() as connection:
        package = _finalized(connection, ref)
        require_endable(package)
        db.record(connection, [db.event(PACKAGE_DELETED, package.id, cbor.encode({}), actor)])
        return registry.get_package(connection, package.id)


def expire(
    db: Database, as_of: datetime | None = None, dry_run: bool = False, actor: str | None = None
) -> Iterator[Package]:
    """End every finalized package whose expiry is at or before as_of (default: now) and that
    no hold keeps; yields each one as it ends (with dry_run, as it would end)."""
    cutoff = format_timestamp(as_of or db.now())
    after: tuple[str, str] = ("", "")
    while True:
        if dry_run:
            with db.read() as connection:
                batch = registry.expired_packages(connection, cutoff, after, _BATCH)
        else:
            with db.write() as connection:
                batch = registry.expired_packages(connection, cutoff, after, _BATCH)
                events = [
                    db.event(PACKAGE_EXPIRED, package.id, cbor.encode({}), actor)
                    for package in batch
                ]
                if events:
                    db.record(connection, events)
        yield from batch
        if len(batch) < _BATCH:
            return
        last = batch[-1]
        assert last.expires_at is not None
        after = (last.expires_at, last.id)


def require_endable(package: Package) -> None:
    """PackageHeldError if a hold or the legal-hold class keeps the package from ending."""
    if package.hold_reason is not None:
        raise PackageHeldError(
            f"package {package} is held ({package.hold_reason!r}); "
            f"release it with 'unhold {package.name} {package.version}' first"
        )
    if package.retention_class == LEGAL_HOLD:
        raise PackageHeldError(
            f"package {package} has retention class {LEGAL_HOLD}; "
            "give it another class first to end it"
        )


def _finalized(connection: Connection, ref: PackageRef) -> Package:
    package = registry.get_package(connection, ref)
    trust.require_not_ended(package)
    if not package.is_finalized:
        raise PackageStateError(
            f"package {package} is open; only a finalized package has retention "
            "(abandon an open one)"
        )
    return package


def _check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON or any(ord(c) < 32 and c not in "\t" for c in reason):
        raise InvalidInputError(
            f"a hold needs a reason: one line of at most {MAX_REASON} characters"
        )
    return reason
