"""The v1 manifest: values and their canonical CBOR (`model`), parsing (`codec`), JCS.

A manifest describes one finalized package completely; its digest, BLAKE3 over its canonical
CBOR bytes, identifies it. Everything here is pure.
"""

from artifactstore.manifest.codec import decode, manifest_from_value
from artifactstore.manifest.model import (
    MANIFEST_VERSION,
    FileEntry,
    Manifest,
    Metadata,
    MetadataScalar,
    MetadataValue,
    PackageInfo,
    Provenance,
    ReceiptEntry,
    RetentionSummary,
    encode,
    format_timestamp,
    manifest_digest,
    manifest_digest_of_bytes,
    manifest_to_value,
    parse_timestamp,
    validate_metadata,
)
from artifactstore.manifest.projection import from_jcs, jcs, jcs_value, parse_jcs

__all__ = [
    "MANIFEST_VERSION",
    "FileEntry",
    "Manifest",
    "Metadata",
    "MetadataScalar",
    "MetadataValue",
    "PackageInfo",
    "Provenance",
    "ReceiptEntry",
    "RetentionSummary",
    "decode",
    "encode",
    "format_timestamp",
    "from_jcs",
    "jcs",
    "jcs_value",
    "manifest_digest",
    "manifest_digest_of_bytes",
    "manifest_from_value",
    "manifest_to_value",
    "parse_jcs",
    "parse_timestamp",
    "validate_metadata",
]
