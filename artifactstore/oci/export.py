"""Export: a finalized package written as an OCI image layout (image-spec "Image Layout").

The layout is built in a temp folder beside DIR and renamed into place whole, so DIR is
either absent (or left empty) or a complete layout: `oci-layout`, `index.json` (the version
as `org.opencontainers.image.ref.name`) and `blobs/sha256/<hex>` for each file, the config
(the package's canonical manifest) and the image manifest. A file's blob is a hard link to
the store's own blob file when the store keeps it as one file on the same filesystem (blob
files are read-only, so the layout cannot change the store), else a copy read through the data
plane and checked against its BLAKE3 as it is copied. SHA-256s are never computed again: they
come from the checked manifest.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path

from artifactstore import registry, trust
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane
from artifactstore.durability import fsync_path, sync_filesystem
from artifactstore.errors import InvalidInputError
from artifactstore.manifest.model import manifest_digest_of_bytes
from artifactstore.oci import layout
from artifactstore.permissions import BLOB_FILE_MODE, make_directories
from artifactstore.records import Package, PackageRef, StoredFile
from artifactstore.storage.spi import object_key
from artifactstore.verifying import VerifyingReader

_COPY_CHUNK = 1 << 20
_LAYOUT_FILE_MODE = 0o644
"""`oci-layout` and `index.json` (a tool adding a tag rewrites it); blobs are read-only."""
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP, errno.ENOENT)
"""Why a hard link may fail where a copy works: another filesystem, a filesystem or a policy
(fs.protected_hardlinks) that refuses it, too many links, or no such blob file here."""


def export(
    db: Database,
    dataplane: DataPlane,
    blob_root: Path | None,
    ref: PackageRef,
    directory: str | os.PathLike[str],
) -> layout.OciImage:
    """Write the finalized package ref names as an OCI image layout at directory (missing or
    empty); returns the image. InvalidInputError if directory is neither, or cannot be written.
    """
    package, image = package_image(db, ref)
    target = Path(directory)
    _require_missing_or_empty(target)
    parent = target.absolute().parent
    temp = parent / f".{target.name}.{secrets.token_hex(6)}.oci-tmp"
    try:
        try:
            make_directories(parent)
            (temp / "blobs" / "sha256").mkdir(parents=True)
        except OSError as exc:
            raise _unwritable(target, exc) from exc
        _write_blobs(dataplane, blob_root, image, temp, trust.label(ref))
        _write(temp / "oci-layout", layout.LAYOUT_FILE, target, _LAYOUT_FILE_MODE)
        _write(temp / "index.json", layout.index(image, package.version), target, _LAYOUT_FILE_MODE)
        try:
            sync_filesystem(temp)
            temp.rename(target)
            fsync_path(parent)
        except OSError as exc:
            raise _unwritable(target, exc) from exc
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return image


def package_image(db: Database, ref: PackageRef) -> tuple[Package, layout.OciImage]:
    """The finalized package ref names and its OCI image, from the manifest its finalize
    event fixed (checked as every read of a version is: `trust`)."""
    with db.read() as connection:
        package = registry.get_package(connection, ref)
        data = trust.finalize_event(connection, package, trust.expected(ref, None)).payload
    digest = str(manifest_digest_of_bytes(data))
    return package, layout.image(data, digest, trust.manifest_files(data))


def _require_missing_or_empty(target: Path) -> None:
    try:
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise InvalidInputError(f"{str(target)!r} exists and is not a directory")
        if target.exists() and any(target.iterdir()):
            raise InvalidInputError(f"{str(target)!r} is not empty; export into a new directory")
    except OSError as exc:
        raise _unwritable(target, exc) from exc


def _unwritable(target: Path, exc: OSError) -> InvalidInputError:
    return InvalidInputError(f"cannot write the layout {str(target)!r}: {exc.strerror or exc}")


def _write_blobs(
    dataplane: DataPlane, blob_root: Path | None, image: layout.OciImage, temp: Path, label: str
) -> None:
    blobs = temp / "blobs" / "sha256"
    written: set[str] = set()
    for file in image.files:
        if file.sha256.hex not in written:
            written.add(file.sha256.hex)
            _place(dataplane, blob_root, file, blobs / file.sha256.hex, f"{label} {file.path}")
    for blob in (image.config, image.manifest):
        _write(blobs / layout.sha256_digest(blob).removeprefix("sha256:"), blob, temp)


def _place(
    dataplane: DataPlane, blob_root: Path | None, file: StoredFile, to: Path, label: str
) -> None:
    """Hard-link the store's blob file to `to`, or copy it there checked (see the docstring)."""
    if blob_root is not None:
        try:
            os.link(blob_root / object_key(file.content_address), to)
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise _unwritable(to, exc) from exc
        else:
            if to.stat().st_size == file.size:
                return
            to.unlink()
    reader = VerifyingReader(
        dataplane.serve_object(file.content_address), file.content_address, file.size, label
    )
    with reader:
        try:
            descriptor = os.open(to, os.O_WRONLY | os.O_CREAT | os.O_EXCL, BLOB_FILE_MODE)
            with os.fdopen(descriptor, "wb") as out:
                while chunk := reader.read(_COPY_CHUNK):
                    out.write(chunk)
        except OSError as exc:
            raise _unwritable(to, exc) from exc


def _write(path: Path, data: bytes, target: Path, mode: int = BLOB_FILE_MODE) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
    except OSError as exc:
        raise _unwritable(target, exc) from exc
