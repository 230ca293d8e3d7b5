"""Backends by id: turns a `backend_id` and its configuration into a StorageBackend.

Stored receipts name the backend that holds a blob by id; this catalog is the one place that
maps an id back to an implementation, so nothing else imports `storage.backends`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from artifactstore.config import S3Location
from artifactstore.errors import ConfigError
from artifactstore.storage.backends.local import LocalBackend
from artifactstore.storage.backends.sqlite_blobs import SQLiteBlobBackend
from artifactstore.storage.spi import StorageBackend

if TYPE_CHECKING:
    from artifactstore.storage.backends.s3 import S3Backend

S3_EXTRA = "pip install 'artifactstore[s3]'"


def _root(backend_id: str, config: dict[str, object]) -> Path:
    unknown = sorted(set(config) - {"root"})
    if unknown:
        raise ConfigError(f"backend {backend_id!r} does not take {', '.join(unknown)}")
    root = config.get("root")
    if not isinstance(root, str | os.PathLike):
        raise ConfigError(f"backend {backend_id!r} needs root=<directory path>, got {root!r}")
    return Path(root)


def _local(backend_id: str, config: dict[str, object]) -> StorageBackend:
    return LocalBackend(_root(backend_id, config), backend_id)


def _local_small(backend_id: str, config: dict[str, object]) -> StorageBackend:
    return SQLiteBlobBackend(_root(backend_id, config), backend_id)


def s3_backend(location: S3Location, backend_id: str = "s3") -> S3Backend:
    """The S3 backend over location; ConfigError naming the extra when boto3 is not installed."""
    try:
        from artifactstore.storage.backends.s3 import S3Backend
    except ImportError as exc:
        raise ConfigError(
            f"S3 storage needs boto3, which is not installed ({exc.name}): {S3_EXTRA}"
        ) from None
    return S3Backend(location, backend_id)


def _s3(backend_id: str, config: dict[str, object]) -> StorageBackend:
    location = config.get("location")
    if set(config) != {"location"} or not isinstance(location, S3Location):
        raise ConfigError(f"backend {backend_id!r} needs location=<S3Location> alone")
    return s3_backend(location, backend_id)


_FACTORIES: dict[str, Callable[[str, dict[str, object]], StorageBackend]] = {
    "local": _local,
    "local-small": _local_small,
    "s3": _s3,
}


def open_backend(backend_id: str, **config: object) -> StorageBackend:
    """Build the backend registered as backend_id; ConfigError for an unknown id or bad config."""
    try:
        factory = _FACTORIES[backend_id]
    except KeyError:
        known = ", ".join(sorted(_FACTORIES))
        raise ConfigError(f"unknown storage backend {backend_id!r} (known: {known})") from None
    return factory(backend_id, config)
