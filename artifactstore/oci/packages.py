"""`ArtifactStore.oci`: packages as OCI image layouts (out and in) and as OCI images for /v2.

Each method is one call into `export`, `import_` or a read here; the blob lookup for the
distribution API's `GET /v2/<name>/blobs/sha256:<hex>` uses the index on
`artifact_files.digest_sha256` (migration 0007) to find a live version of the repository that
names the blob, whose checked manifest then says which file it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from artifactstore import registry, retention, schema
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane
from artifactstore.oci import export, import_
from artifactstore.oci.layout import OciImage
from artifactstore.records import Package, PackageRef, PushResult


class OciPackages:
    """The OCI face of a store (see the module docstring)."""

    def __init__(self, db: Database, dataplane: DataPlane, blob_root: Path | None) -> None:
        self._db = db
        self._dataplane = dataplane
        self._blob_root = blob_root

    def export(self, ref: PackageRef, directory: str | os.PathLike[str]) -> OciImage:
        """Write a finalized package as an OCI image layout at directory (missing or empty)."""
        return export.export(self._db, self._dataplane, self._blob_root, ref, directory)

    def import_layout(
        self,
        directory: str | os.PathLike[str],
        name: str,
        version: str,
        retention_class: str = retention.DEFAULT_CLASS,
        *,
        actor: str | None = None,
    ) -> PushResult:
        """Publish the OCI image layout at directory as (name, version), atomically, as a push."""
        args = (self._db, self._dataplane, directory, name, version, retention_class, actor)
        return import_.import_layout(*args)

    def image(self, ref: PackageRef) -> OciImage:
        """The OCI image of a finalized package: what export writes and /v2 serves."""
        return export.package_image(self._db, ref)[1]

    def package_with_blob(self, name: str, sha256_hex: str) -> Package | None:
        """A finalized, live version of name with a file whose SHA-256 is sha256_hex, or None."""
        files, packages = schema.artifact_files, schema.artifact_packages
        query = (
            select(packages.c.id)
            .join(files, files.c.package_id == packages.c.id)
            .outerjoin(schema.package_ends, schema.package_ends.c.package_id == packages.c.id)
            .where(
                files.c.digest_sha256 == sha256_hex,
                packages.c.name == name,
                packages.c.state == "finalized",
                schema.package_ends.c.package_id.is_(None),
            )
            .limit(1)
        )
        with self._db.read() as connection:
            found = connection.execute(query).scalar_one_or_none()
            return None if found is None else registry.get_package(connection, found)
