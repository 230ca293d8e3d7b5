"""Every error artifactstore raises, under one base class.

```
ArtifactStoreError
├── ConfigError                 a setting or URL that cannot be used
│   └── StoreNotFoundError      no store where the settings point (nothing was created)
├── AccessDeniedError           the server refused the token (401/403); names the scope needed
├── ServerUnavailableError      the server cannot be reached, timed out, or failed (5xx)
├── InvalidInputError (ValueError)
│   ├── InvalidAddressError     a content address that does not parse
│   ├── InvalidNameError        package name or version outside the OCI grammars
│   ├── InvalidPathError        a file path SPEC forbids, a symlink or special file
│   ├── InvalidMetadataError    a metadata key or value of the wrong type
│   ├── InvalidRetentionClassError
│   └── MissingBlobsError       a publish names blobs the store does not have (`.missing`)
├── ManifestError (ValueError)  bytes that are not a canonical v1 manifest
├── NotFoundError (LookupError)
│   ├── PackageNotFoundError
│   ├── PackageFileNotFoundError
│   ├── BlobNotFoundError
│   └── TokenNotFoundError
├── ConflictError
│   ├── AlreadyExistsError      (name, version) taken, or a path added twice
│   ├── PackageFinalizedError   the package is immutable now
│   └── PackageStateError       the package is not in the state the call needs
├── IntegrityError              stored bytes or events are not what was recorded
│   ├── DigestMismatchError     a manifest whose digest is not the one pinned
│   └── LogIntegrityError       the event log has a gap, a broken chain or a forbidden event
├── StorageError                the blob backend failed; wraps the OSError
├── DatabaseError               the registry database failed; wraps the driver error
└── SchemaVersionError          the database is not at the code's migration head
```

Errors carry no exit codes or HTTP statuses: `cli.py` and `web.py` each map them in one table.
Builtin mixins keep `except ValueError` / `except LookupError` working for callers. Over HTTP
an error travels as its code (`error_code`: the class name in snake_case, without "Error"),
and the remote client raises the class of that code again (`error_class`).
"""

from __future__ import annotations

import re


class ArtifactStoreError(Exception):
    """Base of every error raised by artifactstore."""


class ConfigError(ArtifactStoreError):
    """A setting, URL or environment variable that cannot be used."""


class StoreNotFoundError(ConfigError):
    """No store where the settings point, and the caller did not ask to create one.

    A ConfigError, not a NotFoundError: the fault is the configured location (a mistyped
    path), not a missing package, so the web app never answers it with a 404.
    """


class AccessDeniedError(ArtifactStoreError):
    """The server refused the request (401 or 403); the message names the scope it needs."""


class ServerUnavailableError(ArtifactStoreError):
    """The server at the URL cannot be reached, timed out, or failed (5xx); names the URL."""


class InvalidInputError(ArtifactStoreError, ValueError):
    """Input from the caller that is not valid; nothing was changed."""


class InvalidAddressError(InvalidInputError):
    """A content address or digest that does not parse."""


class InvalidNameError(InvalidInputError):
    """A package name or version outside the OCI grammars."""


class InvalidPathError(InvalidInputError):
    """A file path inside a package that SPEC forbids, or a file that cannot be stored."""


class InvalidMetadataError(InvalidInputError):
    """A metadata key or value of a type the manifest cannot carry."""


class InvalidRetentionClassError(InvalidInputError):
    """A retention class that is not one of the seeded classes."""


class MissingBlobsError(InvalidInputError):
    """A publish or add names blobs the store does not have; `missing` lists their addresses."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


class ManifestError(ArtifactStoreError, ValueError):
    """Bytes that are not a canonical manifest (or a canonical CBOR value)."""


class NotFoundError(ArtifactStoreError, LookupError):
    """Something asked for by name or address does not exist."""

    def __str__(self) -> str:
        # LookupError subclasses such as KeyError quote their message; we never want that.
        return str(self.args[0]) if self.args else ""


class PackageNotFoundError(NotFoundError):
    """No package with that id or (name, version)."""


class PackageFileNotFoundError(NotFoundError):
    """The package has no file at that path."""


class BlobNotFoundError(NotFoundError):
    """No blob under that content address in the backend."""


class TokenNotFoundError(NotFoundError):
    """No server token of that name."""


class ConflictError(ArtifactStoreError):
    """The request contradicts state that already exists."""


class AlreadyExistsError(ConflictError):
    """A (name, version) or a path inside a package is already taken."""


class PackageFinalizedError(ConflictError):
    """The package is finalized and therefore immutable."""


class PackageStateError(ConflictError):
    """The package is not in the state the operation needs."""


class PackageHeldError(PackageStateError):
    """A package that may not end: under a hold, or of the legal-hold class."""


class IntegrityError(ArtifactStoreError):
    """Stored bytes or events do not match what was recorded."""


class DigestMismatchError(IntegrityError):
    """A manifest whose digest is not the one the caller pinned (--expect-digest, NAME@digest)."""


class LogIntegrityError(IntegrityError):
    """The event log has a gap, a broken hash chain, or an event the package rules forbid."""


class StorageError(ArtifactStoreError):
    """The blob backend failed; the OSError is chained as the cause."""


class DatabaseError(ArtifactStoreError):
    """The registry database failed; the driver error is chained as the cause."""


class SchemaVersionError(ArtifactStoreError):
    """The database schema is behind or ahead of this version of artifactstore."""


def error_code(kind: type[ArtifactStoreError]) -> str:
    """The code an error class travels as over HTTP: PackageNotFoundError -> package_not_found."""
    name = kind.__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_class(code: str) -> type[ArtifactStoreError] | None:
    """The error class whose code is code (see error_code), or None for no such class."""
    pending: list[type[ArtifactStoreError]] = [ArtifactStoreError]
    while pending:
        kind = pending.pop()
        if error_code(kind) == code:
            return kind
        pending.extend(kind.__subclasses__())
    return None
