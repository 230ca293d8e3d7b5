"""The files a finalize event lists: the view rows a package without file rows gets from its
manifest (ADR-0014).

A publish appends no event per file: the manifest in its `v1.package.finalized` event lists the
files and a receipt per blob, and `views` hands such a package here when the event is applied,
live or in a replay, so both build the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from sqlalchemy import Connection, insert

from artifactstore import schema
from artifactstore.errors import ManifestError
from artifactstore.events.model import SpooledPayload
from artifactstore.identity import ContentAddress
from artifactstore.manifest import reader
from artifactstore.storage.spi import object_key

_FILE_PAGE = 2000


def insert_files(
    connection: Connection,
    sequence: int,
    package_id: str | None,
    manifest: bytes | SpooledPayload,
    occurred_at: str,
    receipts: list[Any],
) -> None:
    """Insert the manifest's files as the package's rows (ingested at the finalize), and their
    blobs' receipts as storage locations where none stands yet, a page at a time.

    A push publishes this way only when each address has one backend (`publish`), so the
    receipts map every file's address to its backend.
    """
    with readable(manifest) as source:
        _insert_listed_pages(connection, sequence, package_id, source, occurred_at, receipts)


def _insert_listed_pages(
    connection: Connection,
    sequence: int,
    package_id: str | None,
    manifest: bytes | BinaryIO,
    occurred_at: str,
    receipts: list[Any],
) -> None:
    entries = reader.entries(manifest, "files")
    try:
        backends = {r["content_address"]: (r["backend_id"], r["stored_at"]) for r in receipts}
        receipts.clear()
        file_rows: list[dict[str, Any]] = []
        location_rows: list[dict[str, Any]] = []
        for entry in entries:
            address = entry["content_address"]
            digests = {
                "digest_algorithm": "blake3",
                "digest_primary": entry["digests"]["blake3"],
                "digest_sha256": entry["digests"]["sha256"],
                "content_address": address,
                "size": entry["size"],
            }
            backend_id, stored_at = backends[address]
            file_rows.append(
                {
                    "package_id": package_id,
                    "path": entry["path"],
                    "executable": entry["executable"],
                    "backend_id": backend_id,
                    "ingested_at": occurred_at,
                    **digests,
                }
            )
            if stored_at is not None:
                backends[address] = (backend_id, None)
                location_rows.append(
                    {
                        "backend_id": backend_id,
                        "object_key": object_key(ContentAddress.parse(address)),
                        "stored_at": stored_at,
                        **digests,
                    }
                )
            if len(file_rows) == _FILE_PAGE:
                _insert_listed(connection, file_rows, location_rows)
        _insert_listed(connection, file_rows, location_rows)
    except (KeyError, TypeError) as exc:
        raise ManifestError(f"event {sequence} does not carry a v1 manifest: {exc}") from exc


def _insert_listed(
    connection: Connection, file_rows: list[dict[str, Any]], location_rows: list[dict[str, Any]]
) -> None:
    if file_rows:
        schema.execute_many(connection, _insert_listed_file, file_rows)
    if location_rows:
        schema.execute_many(connection, insert_location, location_rows)
    file_rows.clear()
    location_rows.clear()


def _insert_listed_file(_connection: Connection) -> Any:
    return insert(schema.artifact_files)


@contextmanager
def readable(manifest: bytes | SpooledPayload) -> Iterator[bytes | BinaryIO]:
    """The manifest's bytes, or its spooled file from the start through a 1 MiB buffer: the
    decoder reads ahead and seeks back after each item, which on the temp file itself cost
    three system calls per file entry."""
    if isinstance(manifest, bytes):
        yield manifest
        return
    manifest.file.seek(0)
    with open(manifest.file.fileno(), "rb", buffering=1 << 20, closefd=False) as buffered:
        yield buffered


def insert_location(connection: Connection) -> Any:
    """INSERT into storage_locations that leaves a standing row alone: the first receipt of a
    blob on a backend stands; later ingests of it change nothing."""
    return schema.dialect_insert(connection)(schema.storage_locations).on_conflict_do_nothing()
