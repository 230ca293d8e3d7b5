"""Import: an OCI image layout published as a package, through the same path as a push.

The layout is read and checked before any blob is stored: `oci-layout`, `index.json` (its one
manifest, or the one tagged VERSION), the image manifest blob (which must hash to the digest
the index gives), and for every titled layer a path a package may hold and a regular blob
file of the layer's size. Layers without `org.opencontainers.image.title` name no file and are
left out, as `oras pull` leaves them out; an executable bit comes from the
`dev.artifactstore.file.executable` annotation an export writes. Then, as `push` does, the
blobs are stored under an upload session (each blob's SHA-256, computed in the pass that
stores it, must be the layer's digest: DigestMismatchError otherwise, with nothing published)
and the whole version is published in one transaction: identical again is success, anything
else a conflict. The config blob is not read: NAME and VERSION are the caller's.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from artifactstore import ingest, publish, tree, uploads
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane
from artifactstore.errors import DigestMismatchError, InvalidInputError, InvalidPathError
from artifactstore.naming import check_name, check_path, check_paths, check_version
from artifactstore.oci import layout
from artifactstore.records import PushResult

MAX_MANIFEST_BYTES = 64 << 20
"""The largest image manifest read (one of 100,000 files is about 25 MiB of JSON)."""


@dataclass(frozen=True, slots=True)
class _LayerFile(tree.TreeFile):
    """A layer to store as a file: its package path, and its blob file in the layout."""

    blob: str
    sha256: str

    @property
    def source(self) -> str:
        """The layer's blob file."""
        return self.blob


def import_layout(
    db: Database,
    dataplane: DataPlane,
    directory: str | os.PathLike[str],
    name: str,
    version: str,
    retention_class: str,
    actor: str | None,
) -> PushResult:
    """Publish the image of the layout at directory as (name, version); see the docstring.

    InvalidInputError (or InvalidPathError) names what in the layout cannot be imported.
    """
    check_name(name)
    check_version(version)
    found = read_layout(Path(directory), version)
    files: list[tree.TreeFile] = list(found)
    with uploads.held(db, actor) as session:
        for ingested in ingest.store_blobs(db, dataplane, session, files, None):
            staged = [ingest.staged_file(*stored) for stored in ingested]
            _check_sha256(found, staged)
            with db.write(lock=False) as connection:
                uploads.stage(connection, session, staged, db.now())
        return publish.publish(db, session, name, version, retention_class, None, actor)


def _check_sha256(found: list[_LayerFile], staged: list[uploads.StagedFile]) -> None:
    expected = {f.path: f.sha256 for f in found}
    for file in staged:
        if file.sha256 != expected[file.path]:
            raise DigestMismatchError(
                f"layer {file.path!r}: blob sha256:{expected[file.path]} holds bytes with "
                f"sha256:{file.sha256}; nothing was imported"
            )


def read_layout(root: Path, version: str) -> list[_LayerFile]:
    """The files of the image the layout at root holds for version, sorted as a scan sorts
    them, every blob present and of its size; InvalidInputError names what is wrong."""
    if not root.is_dir():
        raise InvalidInputError(f"{str(root)!r} is not a directory holding an OCI image layout")
    marker = layout.json_object(_read(root / "oci-layout", 4096), "oci-layout")
    if marker.get("imageLayoutVersion") != "1.0.0":
        raise InvalidInputError(f"{str(root)!r}: oci-layout is not imageLayoutVersion 1.0.0")
    digest, size = layout.pick_manifest(_read(root / "index.json", MAX_MANIFEST_BYTES), version)
    manifest = _read(_blob(root, digest), MAX_MANIFEST_BYTES)
    if len(manifest) != size or layout.sha256_digest(manifest) != digest:
        raise DigestMismatchError(
            f"{str(root)!r}: the image manifest blob is not {digest} of {size} bytes"
        )
    layers = layout.read_layers(manifest)
    paths = [check_path(layer.path) for layer in layers]
    if len(set(paths)) != len(paths):
        twice = next(p for p in paths if paths.count(p) > 1)
        raise InvalidPathError(f"{str(root)!r}: two layers are titled {twice!r}")
    check_paths(paths)
    files = [_layer_file(root, layer) for layer in layers]
    files.sort(key=lambda f: f.path.encode("utf-8"))
    return files


def _layer_file(root: Path, layer: layout.Layer) -> _LayerFile:
    blob = _blob(root, f"sha256:{layer.sha256}")
    try:
        info = blob.lstat()
    except OSError as exc:
        raise InvalidInputError(
            f"layer {layer.path!r}: cannot read {blob}: {exc.strerror}"
        ) from exc
    if not stat.S_ISREG(info.st_mode) or info.st_size != layer.size:
        raise InvalidInputError(
            f"layer {layer.path!r}: {blob} is not a regular file of {layer.size} bytes"
        )
    where = tree.TreeRoot(str(root), "")
    return _LayerFile(
        layer.path, where, info.st_size, info.st_mtime_ns, layer.executable, str(blob), layer.sha256
    )


def _blob(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _read(path: Path, limit: int) -> bytes:
    """A layout file's bytes (at most limit); InvalidInputError if it cannot be read."""
    try:
        if path.is_symlink() or path.stat().st_size > limit:
            raise InvalidInputError(f"{str(path)!r} is a symlink or larger than {limit} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
