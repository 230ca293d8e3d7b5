"""Manifest bytes to a Manifest: the parse boundary for canonical CBOR (and decoded JSON).

`decode` accepts exactly the bytes `model.encode` writes for some valid Manifest: the strict
CBOR decoder (`artifactstore.cbor.decode_strict`) refuses anything non-canonical, and the map
must have exactly the v1 layout with values of the right types, so a manifest's digest
(BLAKE3 over its bytes) is a function of its content.
"""

from __future__ import annotations

from typing import TypeVar, cast

from artifactstore import cbor
from artifactstore.errors import InvalidInputError, ManifestError
from artifactstore.identity import ContentAddress, Digest
from artifactstore.manifest.model import (
    MANIFEST_VERSION,
    FileEntry,
    Manifest,
    PackageInfo,
    Provenance,
    ReceiptEntry,
    RetentionSummary,
    validate_metadata,
)


def _fields(value: object, what: str, required: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ManifestError(f"{what} must be a map, got {type(value).__name__}")
    missing = [key for key in required if key not in value]
    if missing:
        raise ManifestError(f"{what} is missing {', '.join(map(repr, missing))}")
    unknown = sorted(key for key in value if key not in required)
    if unknown:
        raise ManifestError(f"{what} has unknown keys {', '.join(map(repr, unknown))}")
    return value


_T = TypeVar("_T")


def _typed(value: object, kind: type[_T], what: str) -> _T:
    if type(value) is not kind:
        raise ManifestError(f"{what} must be {kind.__name__}, got {value!r:.60}")
    return value


def _list(value: object, what: str) -> list[object]:
    return cast(list[object], _typed(value, list, what))


def _file(value: object) -> FileEntry:
    fields = _fields(
        value, "file entry", ("path", "size", "content_address", "digests", "executable")
    )
    path = _typed(fields["path"], str, "file path")
    digests = _fields(fields["digests"], f"digests of {path!r}", ("blake3", "sha256"))
    blake3 = Digest("blake3", _typed(digests["blake3"], str, f"blake3 digest of {path!r}"))
    sha256 = Digest("sha256", _typed(digests["sha256"], str, f"sha256 digest of {path!r}"))
    address = _typed(fields["content_address"], str, f"content_address of {path!r}")
    if address != str(blake3):
        raise ManifestError(
            f"content_address {address!r} of {path!r} is not 'blake3:' + its blake3 digest"
        )
    return FileEntry(
        path=path,
        size=_typed(fields["size"], int, f"size of {path!r}"),
        blake3=blake3,
        sha256=sha256,
        executable=_typed(fields["executable"], bool, f"executable of {path!r}"),
    )


def _receipt(value: object) -> ReceiptEntry:
    fields = _fields(value, "storage receipt", ("content_address", "backend_id", "stored_at"))
    return ReceiptEntry(
        content_address=ContentAddress.parse(
            _typed(fields["content_address"], str, "receipt content_address")
        ),
        backend_id=_typed(fields["backend_id"], str, "receipt backend_id"),
        stored_at=_typed(fields["stored_at"], str, "receipt stored_at"),
    )


def _metadata(value: object, what: str) -> dict[str, object]:
    return cast(dict[str, object], _typed(value, dict, what))


def _build(value: object) -> Manifest:
    if not isinstance(value, dict):
        raise ManifestError(f"manifest must be a map, got {type(value).__name__}")
    version = value.get("manifest_version")
    if type(version) is not int or version != MANIFEST_VERSION:
        raise ManifestError(
            f"manifest_version {version!r} is not supported; expected {MANIFEST_VERSION}"
        )
    top = _fields(
        value,
        "manifest",
        (
            "manifest_version",
            "package",
            "files",
            "storage_receipts",
            "retention_summary",
            "provenance",
        ),
    )
    package = _fields(
        top["package"],
        "package",
        ("id", "name", "version", "created_at", "finalized_at", "metadata"),
    )
    retention = _fields(top["retention_summary"], "retention_summary", ("class", "expires_at"))
    expires_at = retention["expires_at"]
    provenance = dict(_metadata(top["provenance"], "provenance"))
    producer = _typed(provenance.pop("producer", None), str, "provenance producer")
    return Manifest(
        package=PackageInfo(
            id=_typed(package["id"], str, "package id"),
            name=_typed(package["name"], str, "package name"),
            version=_typed(package["version"], str, "package version"),
            created_at=_typed(package["created_at"], str, "package created_at"),
            finalized_at=_typed(package["finalized_at"], str, "package finalized_at"),
            metadata=validate_metadata(_metadata(package["metadata"], "package metadata")),
        ),
        files=tuple(_file(entry) for entry in _list(top["files"], "files")),
        storage_receipts=tuple(
            _receipt(entry) for entry in _list(top["storage_receipts"], "storage_receipts")
        ),
        retention=RetentionSummary(
            retention_class=_typed(retention["class"], str, "retention class"),
            expires_at=None if expires_at is None else _typed(expires_at, str, "expires_at"),
        ),
        provenance=Provenance(producer=producer, fields=validate_metadata(provenance)),
    )


def manifest_from_value(value: object) -> Manifest:
    """Build a Manifest from its decoded map (CBOR or JSON); ManifestError says what is wrong."""
    try:
        return _build(value)
    except ManifestError:
        raise
    except InvalidInputError as exc:
        raise ManifestError(f"invalid manifest: {exc}") from exc


def decode(data: bytes) -> Manifest:
    """Parse canonical CBOR manifest bytes strictly; anything else raises ManifestError."""
    return manifest_from_value(cbor.decode_strict(data))
