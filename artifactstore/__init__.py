"""artifactstore: a content-addressed, verifiable store for build outputs.

`ArtifactStore.open()` gives the whole library surface, and `connect(url, token)` the same
methods on a running server; the names below are the public API, and all that the command
line and the web app use.
They are imported on first use (PEP 562), so `artifactstore version` and other light entry
points do not pay for SQLAlchemy at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from artifactstore._version import __version__ as __version__

if TYPE_CHECKING:
    from artifactstore.batch import frame_line as frame_line
    from artifactstore.batch import wanted_blobs as wanted_blobs
    from artifactstore.config import DEFAULT_DATABASE_URL as DEFAULT_DATABASE_URL
    from artifactstore.config import DEFAULT_STORAGE_ROOT as DEFAULT_STORAGE_ROOT
    from artifactstore.config import ENV_PREFIX as ENV_PREFIX
    from artifactstore.config import Settings as Settings
    from artifactstore.config import configure_logging as configure_logging
    from artifactstore.config import load_settings as load_settings
    from artifactstore.config import redact_url as redact_url
    from artifactstore.duration import parse_duration as parse_duration
    from artifactstore.errors import AccessDeniedError as AccessDeniedError
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
    from artifactstore.errors import MissingBlobsError as MissingBlobsError
    from artifactstore.errors import NotFoundError as NotFoundError
    from artifactstore.errors import PackageFileNotFoundError as PackageFileNotFoundError
    from artifactstore.errors import PackageFinalizedError as PackageFinalizedError
    from artifactstore.errors import PackageHeldError as PackageHeldError
    from artifactstore.errors import PackageNotFoundError as PackageNotFoundError
    from artifactstore.errors import PackageStateError as PackageStateError
    from artifactstore.errors import SchemaVersionError as SchemaVersionError
    from artifactstore.errors import ServerUnavailableError as ServerUnavailableError
    from artifactstore.errors import StorageError as StorageError
    from artifactstore.errors import StoreNotFoundError as StoreNotFoundError
    from artifactstore.errors import TokenNotFoundError as TokenNotFoundError
    from artifactstore.errors import error_class as error_class
    from artifactstore.errors import error_code as error_code
    from artifactstore.events.log import ChainReport as ChainReport
    from artifactstore.events.log import LogHead as LogHead
    from artifactstore.events.model import Event as Event
    from artifactstore.events.replay import ReplayReport as ReplayReport
    from artifactstore.gc import GcReport as GcReport
    from artifactstore.health import HealthReport as HealthReport
    from artifactstore.health import check_health as check_health
    from artifactstore.identity import ContentAddress as ContentAddress
    from artifactstore.identity import Digest as Digest
    from artifactstore.identity import DualDigest as DualDigest
    from artifactstore.identity import digest_stream as digest_stream
    from artifactstore.maintenance import MaintenanceReport as MaintenanceReport
    from artifactstore.maintenance import start_maintenance as start_maintenance
    from artifactstore.manifest.model import Manifest as Manifest
    from artifactstore.migration import migrate_database as migrate_database
    from artifactstore.naming import PackageSpec as PackageSpec
    from artifactstore.naming import check_name as check_name
    from artifactstore.naming import check_path as check_path
    from artifactstore.naming import check_version as check_version
    from artifactstore.naming import is_package_spec as is_package_spec
    from artifactstore.naming import parse_package_spec as parse_package_spec
    from artifactstore.naming import version_key as version_key
    from artifactstore.oci.layout import OciImage as OciImage
    from artifactstore.records import Package as Package
    from artifactstore.records import Problem as Problem
    from artifactstore.records import PushResult as PushResult
    from artifactstore.records import StoredFile as StoredFile
    from artifactstore.records import VerifyReport as VerifyReport
    from artifactstore.relocation import CopyReport as CopyReport
    from artifactstore.relocation import copy_blobs as copy_blobs
    from artifactstore.remote.store import RemoteStore as RemoteStore
    from artifactstore.remote.store import connect as connect
    from artifactstore.selection import select_files as select_files
    from artifactstore.store import ArtifactStore as ArtifactStore
    from artifactstore.tokens import TOKEN_SCOPES as TOKEN_SCOPES
    from artifactstore.tokens import Token as Token
    from artifactstore.uploaded import NamedBlob as NamedBlob

_LOCATIONS = {
    "Problem": "artifactstore.records",
    "VerifyReport": "artifactstore.records",
    "DEFAULT_DATABASE_URL": "artifactstore.config",
    "DEFAULT_STORAGE_ROOT": "artifactstore.config",
    "ENV_PREFIX": "artifactstore.config",
    "Settings": "artifactstore.config",
    "configure_logging": "artifactstore.config",
    "load_settings": "artifactstore.config",
    "redact_url": "artifactstore.config",
    "parse_duration": "artifactstore.duration",
    "AccessDeniedError": "artifactstore.errors",
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
    "MissingBlobsError": "artifactstore.errors",
    "NotFoundError": "artifactstore.errors",
    "PackageFileNotFoundError": "artifactstore.errors",
    "PackageFinalizedError": "artifactstore.errors",
    "PackageHeldError": "artifactstore.errors",
    "PackageNotFoundError": "artifactstore.errors",
    "PackageStateError": "artifactstore.errors",
    "SchemaVersionError": "artifactstore.errors",
    "ServerUnavailableError": "artifactstore.errors",
    "StorageError": "artifactstore.errors",
    "StoreNotFoundError": "artifactstore.errors",
    "TokenNotFoundError": "artifactstore.errors",
    "error_class": "artifactstore.errors",
    "error_code": "artifactstore.errors",
    "frame_line": "artifactstore.batch",
    "wanted_blobs": "artifactstore.batch",
    "ChainReport": "artifactstore.events.log",
    "LogHead": "artifactstore.events.log",
    "Event": "artifactstore.events.model",
    "ReplayReport": "artifactstore.events.replay",
    "GcReport": "artifactstore.gc",
    "MaintenanceReport": "artifactstore.maintenance",
    "start_maintenance": "artifactstore.maintenance",
    "HealthReport": "artifactstore.health",
    "check_health": "artifactstore.health",
    "ContentAddress": "artifactstore.identity",
    "Digest": "artifactstore.identity",
    "DualDigest": "artifactstore.identity",
    "digest_stream": "artifactstore.identity",
    "Manifest": "artifactstore.manifest.model",
    "migrate_database": "artifactstore.migration",
    "PackageSpec": "artifactstore.naming",
    "OciImage": "artifactstore.oci.layout",
    "CopyReport": "artifactstore.relocation",
    "copy_blobs": "artifactstore.relocation",
    "check_name": "artifactstore.naming",
    "check_path": "artifactstore.naming",
    "check_version": "artifactstore.naming",
    "is_package_spec": "artifactstore.naming",
    "parse_package_spec": "artifactstore.naming",
    "version_key": "artifactstore.naming",
    "PushResult": "artifactstore.records",
    "Package": "artifactstore.records",
    "StoredFile": "artifactstore.records",
    "RemoteStore": "artifactstore.remote.store",
    "connect": "artifactstore.remote.store",
    "select_files": "artifactstore.selection",
    "ArtifactStore": "artifactstore.store",
    "Token": "artifactstore.tokens",
    "TOKEN_SCOPES": "artifactstore.tokens",
    "NamedBlob": "artifactstore.uploaded",
}

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_STORAGE_ROOT",
    "ENV_PREFIX",
    "TOKEN_SCOPES",
    "AccessDeniedError",
    "AlreadyExistsError",
    "ArtifactStore",
    "ArtifactStoreError",
    "BlobNotFoundError",
    "ChainReport",
    "ConfigError",
    "ConflictError",
    "ContentAddress",
    "CopyReport",
    "DatabaseError",
    "Digest",
    "DigestMismatchError",
    "DualDigest",
    "Event",
    "GcReport",
    "HealthReport",
    "IntegrityError",
    "InvalidAddressError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidNameError",
    "InvalidPathError",
    "InvalidRetentionClassError",
    "LogHead",
    "LogIntegrityError",
    "MaintenanceReport",
    "Manifest",
    "ManifestError",
    "MissingBlobsError",
    "NamedBlob",
    "NotFoundError",
    "OciImage",
    "Package",
    "PackageFileNotFoundError",
    "PackageFinalizedError",
    "PackageHeldError",
    "PackageNotFoundError",
    "PackageSpec",
    "PackageStateError",
    "Problem",
    "PushResult",
    "RemoteStore",
    "ReplayReport",
    "SchemaVersionError",
    "ServerUnavailableError",
    "Settings",
    "StorageError",
    "StoreNotFoundError",
    "StoredFile",
    "Token",
    "TokenNotFoundError",
    "VerifyReport",
    "__version__",
    "check_health",
    "check_name",
    "check_path",
    "check_version",
    "configure_logging",
    "connect",
    "copy_blobs",
    "digest_stream",
    "error_class",
    "error_code",
    "frame_line",
    "is_package_spec",
    "load_settings",
    "migrate_database",
    "parse_duration",
    "parse_package_spec",
    "redact_url",
    "select_files",
    "start_maintenance",
    "version_key",
    "wanted_blobs",
]


def __getattr__(name: str) -> object:
    """Import a public name from its module the first time it is used."""
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'artifactstore' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
