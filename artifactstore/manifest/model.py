"""The v1 manifest as frozen values: package, files, storage receipts, retention, provenance.

These values hold exactly the fields of SPEC "Manifest v1" and check their own invariants on
construction (sorted unique entries, valid paths and names, RFC 3339 UTC timestamps), so any
Manifest that exists can be encoded canonically: `manifest_map` is the one layout of the v1
map, `encode` its canonical CBOR. `codec` parses bytes back into a Manifest, `projection`
gives the JCS form. This module is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from artifactstore import cbor
from artifactstore.errors import (
    InvalidMetadataError,
    InvalidNameError,
    InvalidPathError,
    ManifestError,
)
from artifactstore.identity import ContentAddress, Digest, digest_bytes, digest_chunks
from artifactstore.naming import check_name, check_path, check_version

MANIFEST_VERSION = 1
MAX_SAFE_INTEGER = 2**53
"""Largest integer magnitude a manifest carries, so that JSON readers see it exactly."""
MAX_METADATA_KEY_LENGTH = 256
MAX_METADATA_BYTES = 64 * 1024
"""Largest metadata of a package, measured as the canonical CBOR of its map."""

MetadataScalar = str | int | bool
MetadataValue = MetadataScalar | tuple[MetadataScalar, ...]
Metadata = tuple[tuple[str, MetadataValue], ...]

_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{6})Z"
)


def format_timestamp(dt: datetime) -> str:
    """Write an aware datetime as RFC 3339 UTC with 6 fractional digits, e.g. '...26.123456Z'."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ManifestError(f"timestamp {dt!r} is naive; give it a timezone (UTC)")
    try:
        u = dt.astimezone(UTC)
    except OverflowError as exc:
        raise ManifestError(f"timestamp {dt!r} is out of range in UTC") from exc
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T"
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}Z"
    )


def parse_timestamp(text: str) -> datetime:
    """Parse what format_timestamp writes, and nothing else; ManifestError otherwise."""
    match = _TIMESTAMP.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ManifestError(
            f"timestamp {text!r} is not RFC 3339 UTC of the form 2026-11-29T16:17:26.123456Z"
        )
    year, month, day, hour, minute, second, micro = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError as exc:
        raise ManifestError(f"timestamp {text!r} is not a valid date and time: {exc}") from exc


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_scalar(key: str, value: object) -> MetadataScalar:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise InvalidMetadataError(
                f"metadata {key!r}: integer {value} is beyond ±2^53, which JSON cannot carry"
            )
        return int(value)
    if isinstance(value, str):
        if not _is_utf8(value):
            raise InvalidMetadataError(f"metadata {key!r}: value {value!r} is not valid UTF-8")
        return str(value)
    raise InvalidMetadataError(
        f"metadata {key!r}: value {value!r} of type {type(value).__name__} is not allowed; "
        "use text, an integer, a boolean, or a list of those"
    )


def validate_metadata(values: Mapping[str, object]) -> Metadata:
    """Check a metadata mapping and return it as sorted (key, value) pairs, lists as tuples.

    InvalidMetadataError if a key or value is not allowed. The size limit is for new
    packages only (`validate_new_metadata`): stored metadata stays readable whatever its size.
    """
    pairs: list[tuple[str, MetadataValue]] = []
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise InvalidMetadataError(f"metadata key {key!r} must be non-empty text")
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise InvalidMetadataError(
                f"metadata key {key[:32]!r}... is {len(key)} characters long; "
                f"at most {MAX_METADATA_KEY_LENGTH} are allowed"
            )
        if not _is_utf8(key):
            raise InvalidMetadataError(f"metadata key {key!r} is not valid UTF-8")
        if isinstance(value, list | tuple):
            pairs.append((key, tuple(_check_scalar(key, item) for item in value)))
        else:
            pairs.append((key, _check_scalar(key, value)))
    pairs.sort(key=lambda pair: pair[0])
    return tuple(pairs)


def validate_new_metadata(values: Mapping[str, object]) -> Metadata:
    """validate_metadata for a package being made: also at most MAX_METADATA_BYTES (64 KiB)
    as canonical CBOR."""
    checked = validate_metadata(values)
    size = len(cbor.encode(dict(checked)))
    if size > MAX_METADATA_BYTES:
        raise InvalidMetadataError(
            f"metadata is {size} bytes as canonical CBOR; at most {MAX_METADATA_BYTES} "
            "(64 KiB) are allowed per package"
        )
    return checked


def _check_metadata(what: str, metadata: Metadata) -> None:
    if not isinstance(metadata, tuple):
        raise ManifestError(f"{what} must be a tuple of (key, value) pairs, got {metadata!r}")
    try:
        expected = validate_metadata(dict(metadata))
    except (InvalidMetadataError, TypeError, ValueError) as exc:
        raise ManifestError(f"invalid {what}: {exc}") from exc
    # repr() also tells True from 1 and tuples from lists, which == does not.
    if repr(expected) != repr(metadata):
        raise ManifestError(
            f"{what} must be sorted (key, value) pairs with unique keys and tuple arrays; "
            "build it with validate_metadata()"
        )


def _check_text(what: str, value: object) -> None:
    if not isinstance(value, str) or not _is_utf8(value):
        raise ManifestError(f"{what} must be valid UTF-8 text, got {value!r}")


@dataclass(frozen=True, slots=True)
class PackageInfo:
    """Who the package is: id, OCI name and version, timestamps and user metadata."""

    id: str
    name: str
    version: str
    created_at: str
    finalized_at: str
    metadata: Metadata

    def __post_init__(self) -> None:
        _check_text("package id", self.id)
        try:
            check_name(self.name)
            check_version(self.version)
        except InvalidNameError as exc:
            raise ManifestError(str(exc)) from exc
        parse_timestamp(self.created_at)
        parse_timestamp(self.finalized_at)
        _check_metadata("package metadata", self.metadata)


def _check_count(what: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= MAX_SAFE_INTEGER:
        raise ManifestError(f"{what} must be an integer from 0 to 2^53, got {value!r}")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a package: its path, size, both digests and executable bit."""

    path: str
    size: int
    blake3: Digest
    sha256: Digest
    executable: bool

    def __post_init__(self) -> None:
        try:
            check_path(self.path)
        except InvalidPathError as exc:
            raise ManifestError(str(exc)) from exc
        _check_count(f"size of {self.path!r}", self.size)
        for name in ("blake3", "sha256"):
            digest = getattr(self, name)
            if not isinstance(digest, Digest) or digest.algorithm != name:
                raise ManifestError(f"{name} digest of {self.path!r} is {digest!r}")
            if type(digest) is not Digest:
                # A ContentAddress would compare unequal to the Digest that decoding yields.
                object.__setattr__(self, name, Digest(digest.algorithm, digest.hex))
        if type(self.executable) is not bool:
            raise ManifestError(f"executable of {self.path!r} must be a bool")

    @property
    def content_address(self) -> ContentAddress:
        """The content address of the file's bytes."""
        return ContentAddress.of(self.blake3)


@dataclass(frozen=True, slots=True)
class ReceiptEntry:
    """A record that a blob was stored durably by one backend, and when."""

    content_address: ContentAddress
    backend_id: str
    stored_at: str

    def __post_init__(self) -> None:
        if not isinstance(self.content_address, ContentAddress):
            raise ManifestError(
                f"receipt content address must be a ContentAddress, got {self.content_address!r}"
            )
        _check_text("receipt backend_id", self.backend_id)
        parse_timestamp(self.stored_at)


@dataclass(frozen=True, slots=True)
class RetentionSummary:
    """The retention class at finalization and when it expires (None: never)."""

    retention_class: str
    expires_at: str | None

    def __post_init__(self) -> None:
        _check_text("retention class", self.retention_class)
        if self.expires_at is not None:
            parse_timestamp(self.expires_at)


@dataclass(frozen=True, slots=True)
class Provenance:
    """What produced the manifest ('artifactstore <version>') plus user-supplied fields."""

    producer: str
    fields: Metadata = ()

    def __post_init__(self) -> None:
        _check_text("provenance producer", self.producer)
        _check_metadata("provenance fields", self.fields)
        if any(key == "producer" for key, _ in self.fields):
            raise ManifestError("provenance field 'producer' is reserved; choose another name")


def _receipt_key(receipt: ReceiptEntry) -> tuple[str, str]:
    # Two backends may hold the same blob; backend_id breaks the tie so the order is total.
    return (str(receipt.content_address), receipt.backend_id)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A finalized package described completely; its canonical CBOR is what gets digested."""

    package: PackageInfo
    files: tuple[FileEntry, ...]
    storage_receipts: tuple[ReceiptEntry, ...]
    retention: RetentionSummary
    provenance: Provenance
    manifest_version: int = MANIFEST_VERSION

    def __post_init__(self) -> None:
        if type(self.manifest_version) is not int or self.manifest_version != MANIFEST_VERSION:
            raise ManifestError(
                f"manifest_version {self.manifest_version!r} is not supported; "
                f"expected {MANIFEST_VERSION}"
            )
        for what, value, kind in (
            ("package", self.package, PackageInfo),
            ("retention", self.retention, RetentionSummary),
            ("provenance", self.provenance, Provenance),
        ):
            if not isinstance(value, kind):
                raise ManifestError(f"{what} must be a {kind.__name__}, got {value!r}")
        if not isinstance(self.files, tuple) or not all(
            isinstance(f, FileEntry) for f in self.files
        ):
            raise ManifestError("files must be a tuple of FileEntry")
        if not isinstance(self.storage_receipts, tuple) or not all(
            isinstance(r, ReceiptEntry) for r in self.storage_receipts
        ):
            raise ManifestError("storage_receipts must be a tuple of ReceiptEntry")
        paths = [f.path.encode("utf-8") for f in self.files]
        for before, after in pairwise(paths):
            if before >= after:
                raise ManifestError(
                    f"files must be sorted by the UTF-8 bytes of their path without duplicates; "
                    f"{after.decode('utf-8')!r} comes after {before.decode('utf-8')!r}"
                )
        receipts = [_receipt_key(r) for r in self.storage_receipts]
        for before_key, after_key in pairwise(receipts):
            if before_key >= after_key:
                raise ManifestError(
                    "storage_receipts must be sorted by content address (then backend_id) "
                    f"without duplicates; {after_key} comes after {before_key}"
                )

    @property
    def digest(self) -> ContentAddress:
        """The manifest's identity: BLAKE3 over its canonical CBOR encoding."""
        return manifest_digest(self)

    @classmethod
    def build(
        cls,
        package: PackageInfo,
        files: Iterable[FileEntry],
        storage_receipts: Iterable[ReceiptEntry],
        retention: RetentionSummary,
        provenance: Provenance,
        manifest_version: int = MANIFEST_VERSION,
    ) -> Manifest:
        """Make a Manifest from entries in any order; duplicates still raise ManifestError."""
        return cls(
            package=package,
            files=tuple(sorted(files, key=lambda f: f.path.encode("utf-8"))),
            storage_receipts=tuple(sorted(storage_receipts, key=_receipt_key)),
            retention=retention,
            provenance=provenance,
            manifest_version=manifest_version,
        )


def file_value(f: FileEntry) -> dict[str, object]:
    """One entry of the manifest's files array, as a plain map."""
    return file_map(f.path, f.size, f.blake3.hex, f.sha256.hex, f.executable)


def file_map(path: str, size: int, blake3: str, sha256: str, executable: bool) -> dict[str, object]:
    """file_value from checked values (a validated path, hex digests the store computed), its
    keys in canonical order at both levels (a presorted `cbor.Array` item)."""
    return {
        "path": path,
        "size": size,
        "digests": {"blake3": blake3, "sha256": sha256},
        "executable": executable,
        "content_address": f"blake3:{blake3}",
    }


def receipt_value(r: ReceiptEntry) -> dict[str, object]:
    """One entry of the manifest's storage_receipts array, as a plain map."""
    return receipt_map(str(r.content_address), r.backend_id, r.stored_at)


def receipt_map(content_address: str, backend_id: str, stored_at: str) -> dict[str, object]:
    """receipt_value from checked values, its keys in canonical order (a presorted
    `cbor.Array` item)."""
    return {"stored_at": stored_at, "backend_id": backend_id, "content_address": content_address}


def manifest_map(
    package: PackageInfo,
    files: cbor.Array | list[dict[str, object]],
    storage_receipts: cbor.Array | list[dict[str, object]],
    retention: RetentionSummary,
    provenance: Provenance,
) -> dict[str, object]:
    """The v1 manifest map around its files and receipts arrays (`file_value`, `receipt_value`
    maps in manifest order); the one layout, for a Manifest and for one streamed from rows."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "package": {
            "id": package.id,
            "name": package.name,
            "version": package.version,
            "created_at": package.created_at,
            "finalized_at": package.finalized_at,
            "metadata": dict(package.metadata),
        },
        "files": files,
        "storage_receipts": storage_receipts,
        "retention_summary": {
            "class": retention.retention_class,
            "expires_at": retention.expires_at,
        },
        "provenance": {**dict(provenance.fields), "producer": provenance.producer},
    }


def manifest_to_value(m: Manifest) -> dict[str, object]:
    """The manifest as the plain map that both the CBOR and the JCS encodings serialize."""
    return manifest_map(
        m.package,
        [file_value(f) for f in m.files],
        [receipt_value(r) for r in m.storage_receipts],
        m.retention,
        m.provenance,
    )


def encode(m: Manifest) -> bytes:
    """The canonical CBOR bytes of a manifest."""
    files = cbor.Array(len(m.files), map(file_value, m.files), presorted=True)
    receipts = cbor.Array(
        len(m.storage_receipts), map(receipt_value, m.storage_receipts), presorted=True
    )
    return cbor.encode(manifest_map(m.package, files, receipts, m.retention, m.provenance))


def manifest_digest_of_bytes(data: bytes) -> ContentAddress:
    """The content address (BLAKE3) of already-encoded manifest bytes."""
    digest = digest_bytes(data)
    return ContentAddress(digest.algorithm, digest.hex)


def manifest_digest_of_chunks(pieces: Iterable[bytes]) -> ContentAddress:
    """The content address (BLAKE3) of encoded manifest bytes given in pieces."""
    digest = digest_chunks(pieces)
    return ContentAddress(digest.algorithm, digest.hex)


def manifest_digest(m: Manifest) -> ContentAddress:
    """The manifest's identity: BLAKE3 over its canonical CBOR bytes."""
    return manifest_digest_of_bytes(encode(m))


__all__ = [
    "MANIFEST_VERSION",
    "MAX_METADATA_BYTES",
    "MAX_SAFE_INTEGER",
    "FileEntry",
    "Manifest",
    "Metadata",
    "MetadataScalar",
    "MetadataValue",
    "PackageInfo",
    "Provenance",
    "ReceiptEntry",
    "RetentionSummary",
    "encode",
    "file_value",
    "format_timestamp",
    "manifest_digest",
    "manifest_digest_of_bytes",
    "manifest_digest_of_chunks",
    "manifest_map",
    "manifest_to_value",
    "parse_timestamp",
    "receipt_map",
    "receipt_value",
    "validate_metadata",
    "validate_new_metadata",
]
