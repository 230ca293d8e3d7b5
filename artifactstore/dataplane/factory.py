"""The one place a data plane is built from Settings: the storage URL says which backends.

The store, `health`, the web app and the CLI all get their data plane here. `file:///path` is
the local backend with its small-blob tier under that directory; `s3://bucket/prefix` a bucket
of an S3-compatible store (boto3, the `s3` extra); any other scheme is a ConfigError naming the
ones this version knows.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from artifactstore.config import Settings, local_root, s3_location
from artifactstore.dataplane.inproc import InProcessDataPlane
from artifactstore.dataplane.spi import DataPlane
from artifactstore.errors import ConfigError
from artifactstore.permissions import make_directories
from artifactstore.storage.spi import storage_errors

SCHEMES = ("file", "s3")
"""Storage URL schemes this version can open."""


def dataplane_from_settings(settings: Settings, create: bool = False) -> DataPlane:
    """The data plane over the blob storage the settings name; ConfigError if it cannot be.

    An S3 bucket is not touched here: a missing bucket, refused credentials or an unreachable
    endpoint fail the first blob operation with a StorageError saying which. With create, a
    local blob folder that does not exist yet is made first (for a new store),
    and its missing parents, none of them world-writable.
    """
    location = s3_location(settings.storage_url)
    if location is not None:
        return InProcessDataPlane.s3(location)
    root = local_root(settings.storage_url)
    if root is None:
        scheme = urlsplit(settings.storage_url).scheme or "(none)"
        raise ConfigError(
            f"storage URL scheme {scheme!r} is not supported (known: {', '.join(SCHEMES)})"
        )
    if create:
        with storage_errors(f"create the blob folder {root}"):
            make_directories(root)
    return InProcessDataPlane.local(root)
