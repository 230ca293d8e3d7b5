"""What proves a version: the manifest its finalize event fixed, and the digest a reader pins.

A finalized package is read through the manifest in its `v1.package.finalized` event, never
through the file view rows: the event's manifest must hash to the digest the views name (an
edited view row is caught here) and, when the caller pinned one ('NAME@blake3:<hex>' or
expect_digest), to that digest too. The manifest is then read in parts (`manifest.reader`),
not parsed whole: it was checked against the log, and a strict decode of 10,000 files cost
verify a quarter of its time.
"""

from __future__ import annotations

from sqlalchemy import Connection

from artifactstore import registry
from artifactstore.database import Database
from artifactstore.errors import DigestMismatchError, IntegrityError, PackageStateError
from artifactstore.events import log
from artifactstore.events.model import Event
from artifactstore.manifest import reader
from artifactstore.manifest.model import manifest_digest_of_bytes
from artifactstore.naming import is_package_spec
from artifactstore.records import Package, PackageRef, StoredFile


def finalize_event(connection: Connection, package: Package, expect_digest: str | None) -> Event:
    """The package's finalize event, its manifest checked against the views and the pin.

    PackageStateError if the package is open or ended; IntegrityError if the log and the
    views disagree; DigestMismatchError if the manifest is not the expected one.
    """
    require_not_ended(package)
    if not package.is_finalized:
        raise PackageStateError(f"package {package} is not finalized (it is open)")
    event = log.finalize_event(connection, package.id)
    if event is None:
        raise IntegrityError(
            f"package {package} is finalized in the views but the event log never "
            "finalized it; run 'artifactstore verify --all'"
        )
    digest = manifest_digest_of_bytes(event.payload)
    if digest != package.manifest_digest:
        raise IntegrityError(
            f"package {package}: the views name manifest {package.manifest_digest}, the "
            f"event log holds {digest}; run 'artifactstore verify --all'"
        )
    if expect_digest is not None and digest != expect_digest:
        raise DigestMismatchError(
            f"package {package} has manifest {digest}, not the expected {expect_digest}"
        )
    return event


def require_not_ended(package: Package) -> None:
    """PackageStateError naming the end if the package is abandoned, expired or deleted."""
    if package.is_ended:
        raise PackageStateError(
            f"package {package} was {package.state} at {package.ended_at}; its files are gone "
            "and the version is never reused"
        )


def pinned(ref: PackageRef) -> str | None:
    """The digest a 'NAME@blake3:<hex>' reference pins, or None."""
    if isinstance(ref, str) and "@" in ref:
        return "blake3:" + ref.rpartition("@blake3:")[2]
    return None


def expected(ref: PackageRef, expect_digest: str | None) -> str | None:
    """The digest a read must find: expect_digest or the ref's pin (which must then agree)."""
    pin = pinned(ref)
    if pin is not None and expect_digest is not None and pin != expect_digest:
        raise DigestMismatchError(f"{ref} pins {pin}, but {expect_digest} is expected")
    return expect_digest or pin


def label(ref: PackageRef) -> str:
    """How messages name a package reference."""
    if isinstance(ref, tuple):
        return f"{ref[0]}:{ref[1]}"
    if isinstance(ref, str) and not is_package_spec(ref):
        return f"package {ref}"
    return str(ref)


def manifest_files(data: bytes) -> list[StoredFile]:
    """The files a checked manifest lists, with the backend each blob's receipt names."""
    backends = dict(reader.receipts(data))
    return [
        StoredFile(
            path=f.path,
            size=f.size,
            blake3=f.blake3,
            sha256=f.sha256,
            executable=f.executable,
            backend_id=backends.get(str(f.content_address), ""),
        )
        for f in reader.files(data)
    ]


def read_manifest(db: Database, ref: PackageRef, expect_digest: str | None = None) -> bytes:
    """The checked manifest (canonical CBOR) of the finalized package ref names."""
    with db.read() as connection:
        package = registry.get_package(connection, ref)
        return finalize_event(connection, package, expected(ref, expect_digest)).payload
