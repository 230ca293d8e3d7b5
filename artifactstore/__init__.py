"""artifactstore: a content-addressed, verifiable store for build outputs.

`ArtifactStore.open()` gives the whole library surface; the names below are the public API.
They are imported on first use (PEP 562), so `artifactstore version` and other light entry
points do not pay for SQLAlchemy at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from artifactstore._version import __version__ as __version__

if TYPE_CHECKING:
    from artifactstore.audit import Problem as Problem
    from artifactstore.audit import VerifyReport as VerifyReport
    from artifactstore.errors import AlreadyExistsError as AlreadyExistsError
    from artifactstore.errors import ArtifactStoreError as ArtifactStoreError
    from artifactstore.errors import BlobNotFoundError as BlobNotFoundError
    from artifactstore.errors import ConfigError as ConfigError
    from artifactstore.errors import ConflictError as ConflictError
    from artifactstore.errors import DatabaseError as DatabaseError
    from artifactstore.errors import DigestMismatchError as DigestMismatchError
    from artifactstore.errors import IntegrityError as IntegrityError
    from artifactstore.errors import InvalidAddressError as InvalidAddressError
    from artifactstore.errors import InvalidInputError as InvalidInputError
    from artifactstore.errors import InvalidMetadataError as InvalidMetadataError
    from artifactstore.errors import InvalidNameError as InvalidNameError
    from artifactstore.errors import InvalidPathError as InvalidPathError
    from artifactstore.errors import InvalidRetentionClassError as InvalidRetentionClassError
    from artifactstore.errors import LogIntegrityError as LogIntegrityError
    from artifactstore.errors import ManifestError as ManifestError
    from artifactstore.errors import NotFoundError as NotFoundError
    from artifactstore.errors import PackageFileNotFoundError as PackageFileNotFoundError
    from artifactstore.errors import PackageFinalizedError as PackageFinalizedError
    from artifactstore.errors import PackageNotFoundError as PackageNotFoundError
    from artifactstore.errors import PackageStateError as PackageStateError
    from artifactstore.errors import SchemaVersionError as SchemaVersionError
    from artifactstore.errors import StorageError as StorageError
    from artifactstore.events.model import Event as Event
    from artifactstore.identity import ContentAddress as ContentAddress
    from artifactstore.identity import Digest as Digest
    from artifactstore.identity import DualDigest as DualDigest
    from artifactstore.identity import digest_stream as digest_stream
    from artifactstore.manifest.model import Manifest as Manifest
    from artifactstore.registry import Package as Package
    from artifactstore.registry import StoredFile as StoredFile
    from artifactstore.store import ArtifactStore as ArtifactStore

_LOCATIONS = {
    "Problem": "artifactstore.audit",
    "VerifyReport": "artifactstore.audit",
    "AlreadyExistsError": "artifactstore.errors",
    "ArtifactStoreError": "artifactstore.errors",
    "BlobNotFoundError": "artifactstore.errors",
    "ConfigError": "artifactstore.errors",
    "ConflictError": "artifactstore.errors",
    "DatabaseError": "artifactstore.errors",
    "DigestMismatchError": "artifactstore.errors",
    "IntegrityError": "artifactstore.errors",
    "InvalidAddressError": "artifactstore.errors",
    "InvalidInputError": "artifactstore.errors",
    "InvalidMetadataError": "artifactstore.errors",
    "InvalidNameError": "artifactstore.errors",
    "InvalidPathError": "artifactstore.errors",
    "InvalidRetentionClassError": "artifactstore.errors",
    "LogIntegrityError": "artifactstore.errors",
    "ManifestError": "artifactstore.errors",
    "NotFoundError": "artifactstore.errors",
    "PackageFileNotFoundError": "artifactstore.errors",
    "PackageFinalizedError": "artifactstore.errors",
    "PackageNotFoundError": "artifactstore.errors",
    "PackageStateError": "artifactstore.errors",
    "SchemaVersionError": "artifactstore.errors",
    "StorageError": "artifactstore.errors",
    "Event": "artifactstore.events.model",
    "ContentAddress": "artifactstore.identity",
    "Digest": "artifactstore.identity",
    "DualDigest": "artifactstore.identity",
    "digest_stream": "artifactstore.identity",
    "Manifest": "artifactstore.manifest.model",
    "Package": "artifactstore.registry",
    "StoredFile": "artifactstore.registry",
    "ArtifactStore": "artifactstore.store",
}

__all__ = [
    "AlreadyExistsError",
    "ArtifactStore",
    "ArtifactStoreError",
    "BlobNotFoundError",
    "ConfigError",
    "ConflictError",
    "ContentAddress",
    "DatabaseError",
    "Digest",
    "DigestMismatchError",
    "DualDigest",
    "Event",
    "IntegrityError",
    "InvalidAddressError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidNameError",
    "InvalidPathError",
    "InvalidRetentionClassError",
    "LogIntegrityError",
    "Manifest",
    "ManifestError",
    "NotFoundError",
    "Package",
    "PackageFileNotFoundError",
    "PackageFinalizedError",
    "PackageNotFoundError",
    "PackageStateError",
    "Problem",
    "SchemaVersionError",
    "StorageError",
    "StoredFile",
    "VerifyReport",
    "__version__",
    "digest_stream",
]


def __getattr__(name: str) -> object:
    """Import a public name from its module the first time it is used."""
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'artifactstore' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
