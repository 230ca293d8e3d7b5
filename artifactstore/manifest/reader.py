"""Reading a stored manifest in parts: its files one at a time, or its small maps alone.

A 100,000-file manifest is ~43 MB of CBOR and, decoded whole into values, several hundred MB
of objects; comparing a re-push with it, or reading its finalize and expiry times, needs one
file at a time or none. These readers walk the top-level map with `cbor.Reader` (cbor2's C
decoder) and step over what they do not need. They read manifests the store itself wrote and
whose digest it checked against the log (use `codec.decode` at a parse boundary); malformed
bytes still raise ManifestError, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from artifactstore import cbor
from artifactstore.errors import InvalidInputError, ManifestError
from artifactstore.identity import Digest
from artifactstore.manifest.model import FileEntry

_ARRAYS = ("files", "storage_receipts")


def files(data: bytes) -> Iterator[FileEntry]:
    """The manifest's files in its order (by the UTF-8 bytes of the path), one at a time."""
    for value in _array(data, "files"):
        try:
            yield FileEntry(
                value["path"],
                value["size"],
                Digest("blake3", value["digests"]["blake3"]),
                Digest("sha256", value["digests"]["sha256"]),
                value["executable"],
            )
        except (KeyError, TypeError, InvalidInputError) as exc:
            raise ManifestError(f"not a v1 manifest file entry: {exc}") from exc


def receipts(data: bytes) -> Iterator[tuple[str, str]]:
    """(content address, backend id) of each storage receipt of the manifest, one at a time."""
    for value in _array(data, "storage_receipts"):
        try:
            yield str(value["content_address"]), str(value["backend_id"])
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"not a v1 manifest storage receipt: {exc}") from exc


def entries(data: bytes | BinaryIO, wanted: str) -> Iterator[Any]:
    """The raw elements (plain maps) of one of the manifest's top-level arrays, "files" or
    "storage_receipts", decoded one at a time; data is the manifest's bytes, or a binary file
    at its start."""
    return _array(data, wanted)


def _array(data: bytes | BinaryIO, wanted: str) -> Iterator[Any]:
    """The elements of one of the manifest's top-level arrays, decoded one at a time."""
    walker = cbor.Reader(data)
    try:
        for _ in range(walker.map_length()):
            key = walker.item()
            if key != wanted:
                _skip(walker, key)
                continue
            for _ in range(walker.array_length()):
                yield walker.item()
            return
    except ManifestError:
        raise
    except Exception as exc:  # cbor2 and malformed maps raise several unrelated types
        raise ManifestError(f"not a v1 manifest: {exc}") from exc
    raise ManifestError(f"not a v1 manifest: it has no {wanted}")


def small_maps(data: bytes | BinaryIO) -> dict[str, Any]:
    """Every top-level entry of the manifest except the files and storage receipts arrays
    (data is the manifest's bytes, or a binary file at its start)."""
    return outline(data, None)


def outline(data: bytes | BinaryIO, receipts: list[Any] | None) -> dict[str, Any]:
    """small_maps, in the same walk appending the raw storage receipts to receipts if given."""
    walker = cbor.Reader(data)
    found: dict[str, Any] = {}
    try:
        for _ in range(walker.map_length()):
            key = walker.item()
            if key == "storage_receipts" and receipts is not None:
                receipts.extend(walker.item() for _ in range(walker.array_length()))
            elif key in _ARRAYS:
                _skip(walker, key)
            else:
                found[key] = walker.item()
    except ManifestError:
        raise
    except Exception as exc:  # cbor2 raises several unrelated types on bad input
        raise ManifestError(f"not a v1 manifest: {exc}") from exc
    return found


def _skip(walker: cbor.Reader, key: object) -> None:
    if key in _ARRAYS:
        for _ in range(walker.array_length()):
            walker.item()
    else:
        walker.item()
