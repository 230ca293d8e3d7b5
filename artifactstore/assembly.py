"""Assembling a package step by step: create it open, then finalize or abandon it.

Files are added in between by `ingest`. Each step is one write transaction under the log lock
that checks the package's state and records its event; the writer checks the same rules
against the log itself (`events.log`), so a racing writer cannot slip past them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from artifactstore import cbor, registry, trust
from artifactstore.database import Database
from artifactstore.errors import AlreadyExistsError, ConflictError
from artifactstore.events.model import PACKAGE_ABANDONED, PACKAGE_FINALIZED
from artifactstore.ingest import require_open
from artifactstore.manifest.model import (
    format_timestamp,
    manifest_digest_of_bytes,
    validate_new_metadata,
)
from artifactstore.naming import check_name, check_version
from artifactstore.publish import encode_manifest, opening_events, spool
from artifactstore.records import Package, PackageRef, PushResult


def create(
    db: Database,
    name: str,
    version: str,
    retention_class: str,
    metadata: Mapping[str, object] | None,
    actor: str | None,
) -> Package:
    """Create an open package; AlreadyExistsError if (name, version) is taken."""
    check_name(name)
    check_version(version)
    checked = validate_new_metadata(metadata or {})
    package_id = str(uuid.uuid4())
    opening = opening_events(db, package_id, name, version, retention_class, checked, actor)
    try:
        with db.write() as connection:
            registry.retention_class(connection, retention_class)
            if registry.find_package(connection, name, version) is not None:
                raise AlreadyExistsError(f"package {name}:{version} already exists")
            db.record(connection, opening)
            return registry.get_package(connection, package_id)
    except ConflictError as exc:
        if isinstance(exc, AlreadyExistsError):
            raise
        raise AlreadyExistsError(f"package {name}:{version} already exists") from exc


def abandon(db: Database, ref: PackageRef, actor: str | None) -> None:
    """Drop an open package; PackageFinalizedError if it is finalized."""
    with db.write() as connection:
        package = registry.get_package(connection, ref)
        require_open(package)
        db.record(connection, [db.event(PACKAGE_ABANDONED, package.id, cbor.encode({}), actor)])


def finalize(db: Database, ref: PackageRef, actor: str | None) -> tuple[bytes, PushResult]:
    """Finalize a package (if it is still open): its canonical CBOR manifest, and what the
    finalize did as a push says it (created: this call finalized it; its finalize event)."""
    with db.write() as connection:
        package = registry.get_package(connection, ref)
        if package.is_finalized:
            event = trust.finalize_event(connection, package, None)
            data, sequence, chain, created = (
                event.payload,
                event.sequence,
                event.chain_digest,
                False,
            )
        else:
            with spool() as out:
                manifest = encode_manifest(connection, package, format_timestamp(db.now()), out)
                [sealed] = db.record(
                    connection, [db.event(PACKAGE_FINALIZED, package.id, manifest, actor)]
                )
                data = b"".join(manifest.chunks())
            sequence, chain, created = sealed.sequence, sealed.chain_digest, True
        files, total, _ = registry.package_totals(connection, package.id)
    digest = manifest_digest_of_bytes(data)
    result = PushResult(
        package.name, package.version, digest, created, sequence, chain, files, total
    )
    return data, result
