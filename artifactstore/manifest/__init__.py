"""The v1 manifest: frozen values (`model`), canonical CBOR (`codec`) and JCS (`projection`).

A manifest describes one finalized package completely; its digest, BLAKE3 over its canonical
CBOR bytes, identifies it. Everything here is pure.
"""

from artifactstore.manifest.codec import (
    decode,
    decode_value,
    encode,
    encode_value,
    manifest_digest,
    manifest_digest_of_bytes,
    manifest_from_value,
    manifest_to_value,
)
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
    format_timestamp,
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
    "decode_value",
    "encode",
    "encode_value",
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
