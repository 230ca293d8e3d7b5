"""Reads of the view tables, turned into values: packages, their files, blob locations.

Rows become frozen values here, so `Row` and `Any` go no further. Writes never happen here:
the store appends events and `events.views` applies them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.sql.functions import coalesce

from artifactstore import cbor, schema
from artifactstore.errors import (
    InvalidInputError,
    InvalidRetentionClassError,
    PackageNotFoundError,
)
from artifactstore.identity import Digest
from artifactstore.manifest.model import validate_metadata
from artifactstore.naming import (
    check_name,
    check_version,
    is_package_spec,
    parse_package_spec,
    version_key,
)
from artifactstore.records import LEGAL_HOLD, Package, PackageRef, StoredFile


@dataclass(frozen=True, slots=True)
class RetentionClass:
    """A seeded retention class: how many days it keeps (None: forever) and deletability."""

    name: str
    keep_days: int | None
    deletable: bool
    explicit_delete_only: bool


_PACKAGE_COLUMNS = (
    schema.artifact_packages.c.id,
    schema.artifact_packages.c.name,
    schema.artifact_packages.c.version,
    coalesce(schema.package_ends.c.state, schema.artifact_packages.c.state).label("state"),
    schema.artifact_packages.c.metadata,
    schema.artifact_packages.c.created_at,
    schema.artifact_packages.c.finalized_at,
    schema.artifact_packages.c.manifest_digest,
    schema.retention_state.c.retention_class,
    schema.retention_state.c.expires_at,
    schema.retention_state.c.hold_reason,
    schema.package_ends.c.ended_at,
)


def _package_query() -> Any:
    packages = schema.artifact_packages
    return (
        select(*_PACKAGE_COLUMNS)
        .join(schema.retention_state, schema.retention_state.c.package_id == packages.c.id)
        .outerjoin(schema.package_ends, schema.package_ends.c.package_id == packages.c.id)
    )


def _package(row: Row[Any], counted: bool = False) -> Package:
    metadata = cbor.decode_strict(bytes(row.metadata))
    assert isinstance(metadata, dict)  # written by views._package_created from a map
    return Package(
        file_count=int(row.file_count or 0) if counted else None,
        size=int(row.size or 0) if counted else None,
        id=row.id,
        name=row.name,
        version=row.version,
        state=row.state,
        retention_class=row.retention_class,
        metadata=validate_metadata(metadata),
        created_at=row.created_at,
        finalized_at=row.finalized_at,
        manifest_digest=row.manifest_digest,
        expires_at=row.expires_at,
        hold_reason=row.hold_reason,
        ended_at=row.ended_at,
    )


def find_package(connection: Connection, name: str, version: str) -> Package | None:
    """The package called (name, version), or None."""
    row = connection.execute(
        _package_query().where(
            schema.artifact_packages.c.name == name,
            schema.artifact_packages.c.version == version,
        )
    ).one_or_none()
    return None if row is None else _package(row)


def get_package(connection: Connection, ref: PackageRef) -> Package:
    """Resolve a package reference; PackageNotFoundError names it if it does not exist."""
    if isinstance(ref, str) and is_package_spec(ref):
        spec = parse_package_spec(ref)
        if spec.version is None:
            return _package_by_digest(connection, spec.name, str(spec.digest))
        ref = (spec.name, spec.version)
    if isinstance(ref, tuple):
        if len(ref) != 2:
            raise InvalidInputError(
                f"package reference {ref!r} is not a (name, version) pair; give a Package, its "
                "id, 'NAME:VERSION', 'NAME@blake3:<hex>' or (name, version)"
            )
        name, version = ref
        found = find_package(connection, check_name(name), check_version(version))
        if found is None:
            raise PackageNotFoundError(f"no package {name}:{version}{_known(connection, name)}")
        return found
    package_id = ref.id if isinstance(ref, Package) else ref
    row = connection.execute(
        _package_query().where(schema.artifact_packages.c.id == package_id)
    ).one_or_none()
    if row is None:
        raise PackageNotFoundError(f"no package with id {package_id!r}")
    return _package(row)


def _package_by_digest(connection: Connection, name: str, digest: str) -> Package:
    row = connection.execute(
        _package_query().where(
            schema.artifact_packages.c.name == name,
            schema.artifact_packages.c.manifest_digest == digest,
        )
    ).first()
    if row is None:
        raise PackageNotFoundError(f"no package {name}@{digest}{_known(connection, name)}")
    return _package(row)


_KNOWN_SHOWN = 5


def _known(connection: Connection, name: str) -> str:
    """What a not-found message adds: the newest few versions of name, or that it has none."""
    packages = schema.artifact_packages
    found = connection.execute(select(packages.c.version).where(packages.c.name == name))
    versions = sorted((row.version for row in found), key=version_key, reverse=True)
    if not versions:
        return f" (no version of {name} exists)"
    more = f", ... ({len(versions)} in all)" if len(versions) > _KNOWN_SHOWN else ""
    return f" (versions that exist: {', '.join(versions[:_KNOWN_SHOWN])}{more})"


def list_packages(
    connection: Connection, name: str | None = None, include_ended: bool = False
) -> list[Package]:
    """All packages (or all versions of one name) with their file counts and sizes: by name,
    then newest first (version order, `version_key`, then finalize time); tombstones of ended
    packages only with include_ended."""
    packages, files = schema.artifact_packages, schema.artifact_files
    totals = select(
        files.c.package_id,
        func.count().label("file_count"),
        func.sum(files.c.size).label("size"),
    ).group_by(files.c.package_id)
    if name is not None:
        totals = totals.where(
            files.c.package_id.in_(select(packages.c.id).where(packages.c.name == name))
        )
    counted = totals.subquery()
    query = (
        _package_query()
        .add_columns(counted.c.file_count, counted.c.size)
        .outerjoin(counted, counted.c.package_id == packages.c.id)
    )
    if name is not None:
        query = query.where(packages.c.name == name)
    if not include_ended:
        query = query.where(schema.package_ends.c.package_id.is_(None))
    found = [_package(row, counted=True) for row in connection.execute(query)]
    found.sort(
        key=lambda p: (version_key(p.version), p.finalized_at or "", p.version), reverse=True
    )
    found.sort(key=lambda p: p.name)  # stable: newest first within each name
    return found


def expired_packages(
    connection: Connection, cutoff: str, after: tuple[str, str], limit: int
) -> list[Package]:
    """Finalized packages that no hold keeps, expiring at or before cutoff: the first limit
    after (expires_at, id), in that order."""
    packages, kept, ends = schema.artifact_packages, schema.retention_state, schema.package_ends
    query = (
        _package_query()
        .where(
            packages.c.state == "finalized",
            ends.c.package_id.is_(None),
            kept.c.expires_at.is_not(None),
            kept.c.expires_at <= cutoff,
            kept.c.hold_reason.is_(None),
            kept.c.retention_class != LEGAL_HOLD,
            (kept.c.expires_at > after[0])
            | ((kept.c.expires_at == after[0]) & (packages.c.id > after[1])),
        )
        .order_by(kept.c.expires_at, packages.c.id)
        .limit(limit)
    )
    return [_package(row) for row in connection.execute(query)]


def _stored_file(row: Row[Any]) -> StoredFile:
    return StoredFile(
        path=row.path,
        size=int(row.size),
        blake3=Digest("blake3", row.digest_primary),
        sha256=Digest("sha256", row.digest_sha256),
        executable=bool(row.executable),
        backend_id=row.backend_id,
    )


def package_files(connection: Connection, package_id: str) -> list[StoredFile]:
    """The files of a package, sorted by the UTF-8 bytes of their paths."""
    return list(iter_package_files(connection, package_id))


def iter_package_files(connection: Connection, package_id: str) -> Iterator[StoredFile]:
    """The files of a package in manifest order (UTF-8 bytes of the path), a page at a time."""
    files = schema.artifact_files
    after: str | None = None
    while True:
        query = (
            select(files)
            .where(files.c.package_id == package_id)
            .order_by(schema.byte_order(files.c.path, connection))
            .limit(_PAGE)
        )
        if after is not None:
            query = query.where(schema.byte_order(files.c.path, connection) > after)
        page = [_stored_file(row) for row in connection.execute(query)]
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1].path


def package_totals(connection: Connection, package_id: str) -> tuple[int, int, int]:
    """(files, bytes, distinct blobs by backend) of a package."""
    files = schema.artifact_files
    count, total = connection.execute(
        select(func.count(), func.coalesce(func.sum(files.c.size), 0)).where(
            files.c.package_id == package_id
        )
    ).one()
    blobs = connection.execute(
        select(func.count()).select_from(
            select(files.c.content_address, files.c.backend_id)
            .where(files.c.package_id == package_id)
            .distinct()
            .subquery()
        )
    ).scalar_one()
    return int(count), int(total), int(blobs)


def iter_receipts(connection: Connection, package_id: str) -> Iterator[tuple[str, str, str]]:
    """(content address, backend id, stored at) of each distinct blob of a package, in order."""
    files, locations = schema.artifact_files, schema.storage_locations
    # Driven by the package's own rows; ordered outside the DISTINCT, because PostgreSQL
    # cannot order a DISTINCT by an expression (the collation) that it does not select.
    blobs = (
        select(locations.c.content_address, locations.c.backend_id, locations.c.stored_at)
        .join(
            files,
            (files.c.content_address == locations.c.content_address)
            & (files.c.backend_id == locations.c.backend_id),
        )
        .where(files.c.package_id == package_id)
        .distinct()
        .subquery()
    )
    query = select(blobs).order_by(
        schema.byte_order(blobs.c.content_address, connection),
        schema.byte_order(blobs.c.backend_id, connection),
    )
    for rows in connection.execute(query.execution_options(yield_per=_PAGE)).partitions():
        for row in rows:
            yield str(row.content_address), str(row.backend_id), str(row.stored_at)


def package_file(connection: Connection, package_id: str, path: str) -> StoredFile | None:
    """One file of a package by path, or None."""
    files = schema.artifact_files
    row = connection.execute(
        select(files).where(files.c.package_id == package_id, files.c.path == path)
    ).one_or_none()
    return None if row is None else _stored_file(row)


def package_files_at(
    connection: Connection, package_id: str, paths: Iterable[str]
) -> dict[str, StoredFile]:
    """The files a package has at any of paths, by path."""
    files = schema.artifact_files
    found: dict[str, StoredFile] = {}
    for chunk in _in_chunks(paths):
        rows = connection.execute(
            select(files).where(files.c.package_id == package_id, files.c.path.in_(chunk))
        )
        found.update((row.path, _stored_file(row)) for row in rows)
    return found


def file_count(connection: Connection, package_id: str) -> int:
    """How many files a package has."""
    files = schema.artifact_files
    query = select(func.count()).where(files.c.package_id == package_id)
    return int(connection.execute(query).scalar_one())


def package_paths(connection: Connection, package_id: str) -> set[str]:
    """The set of paths already in a package."""
    files = schema.artifact_files
    return set(
        connection.execute(select(files.c.path).where(files.c.package_id == package_id)).scalars()
    )


@dataclass(frozen=True, slots=True)
class BlobRow:
    """A blob as the registry records it: its address, SHA-256 (hex) and size."""

    address: str
    sha256: str
    size: int


def stored_at(connection: Connection, backend_id: str, addresses: Iterable[str]) -> dict[str, str]:
    """When each of the given blobs was first stored on the backend, by content address."""
    locations = schema.storage_locations
    result: dict[str, str] = {}
    for chunk in _in_chunks(addresses):
        rows = connection.execute(
            select(locations.c.content_address, locations.c.stored_at).where(
                locations.c.backend_id == backend_id,
                locations.c.content_address.in_(chunk),
            )
        )
        result.update({row.content_address: row.stored_at for row in rows})
    return result


def retention_classes(connection: Connection) -> dict[str, RetentionClass]:
    """The seeded retention classes by name."""
    rows = connection.execute(select(schema.retention_classes))
    return {
        row.name: RetentionClass(
            row.name, row.keep_days, bool(row.deletable), bool(row.explicit_delete_only)
        )
        for row in rows
    }


def retention_class(connection: Connection, name: str) -> RetentionClass:
    """One retention class; InvalidRetentionClassError lists the known ones if it is unknown."""
    classes = retention_classes(connection)
    if name not in classes:
        raise InvalidRetentionClassError(
            f"unknown retention class {name!r} (known: {', '.join(sorted(classes))})"
        )
    return classes[name]


def stored_of_sizes(connection: Connection, sizes: Iterable[int]) -> dict[str, tuple[int, str]]:
    """Every stored blob of one of the given sizes: its content address, with its size and
    the SHA-256 hex recorded when it was stored (what a re-push of a large file looks for)."""
    locations = schema.storage_locations
    found: dict[str, tuple[int, str]] = {}
    for chunk in _in_chunks(sizes):
        rows = connection.execute(
            select(locations.c.content_address, locations.c.size, locations.c.digest_sha256)
            .where(locations.c.size.in_(chunk))
            .distinct()
        )
        found.update((address, (int(size), sha256)) for address, size, sha256 in rows)
    return found


_IN_CHUNK = 500
_PAGE = 2000
_V = TypeVar("_V", str, int)


def _in_chunks(values: Iterable[_V]) -> Iterator[list[_V]]:
    """The distinct values, sorted, in lists short enough for any database's IN (...) limit."""
    wanted = sorted(set(values))
    for start in range(0, len(wanted), _IN_CHUNK):
        yield wanted[start : start + _IN_CHUNK]


def stored_blobs(connection: Connection, after: str = "", limit: int = _PAGE) -> list[BlobRow]:
    """The blobs the registry knows (content address, SHA-256 hex, size), in address order,
    the first `limit` after `after`: a page to resume from."""
    locations = schema.storage_locations
    rows = connection.execute(
        select(locations.c.content_address, locations.c.digest_sha256, locations.c.size)
        .where(locations.c.content_address > after)
        .group_by(locations.c.content_address, locations.c.digest_sha256, locations.c.size)
        .order_by(locations.c.content_address)
        .limit(limit)
    )
    return [BlobRow(row.content_address, row.digest_sha256, int(row.size)) for row in rows]
