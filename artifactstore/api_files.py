"""Files of finalized versions for the API: found by path or content address, sent many at once.

`FileIndex` keeps the checked file lists of recently read manifests, so a pull's requests do
not each read and check the manifest again. `many_blobs` answers
`POST /v1/packages/{name}/versions/{version}/blobs`: a pull of many small files asks for them
in a few requests instead of one each (the per-request cost, not the bytes, was the time).
The body names the blobs wanted, `{"blobs": [content addresses]}`, each a file of the version,
within the limits of `artifactstore.batch`; the answer is their frames in that order, as a
batch upload sends them: the line `blake3:<hex> <size>` and the bytes. Each blob is read whole
(at most 1 MiB) and checked before its frame is sent; one failing the server's own check cuts
the answer short of its Content-Length, so the client sees an error, never bad bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import blake3
from flask import Response

from artifactstore import (
    ArtifactStore,
    ArtifactStoreError,
    IntegrityError,
    Package,
    PackageFileNotFoundError,
    StoredFile,
    frame_line,
    wanted_blobs,
)
from artifactstore.api_recent import ByManifestDigest

_log = logging.getLogger(__name__)


class FileIndex:
    """The files of recently read manifests, keyed by manifest digest (`api_recent`).

    A pull asks for every file of a package; reading and checking the manifest for each
    request made a pull quadratic in the number of files (0.2 s per file of a 2,000-file
    package). The files of at most max_files are kept, oldest manifest dropped first.
    """

    def __init__(self, max_files: int = 50_000) -> None:
        self.recent: ByManifestDigest[dict[str, StoredFile]] = ByManifestDigest(max_files, len)

    def files(self, store: ArtifactStore, package: Package) -> dict[str, StoredFile]:
        """The files of a finalized package by path, from its checked manifest."""
        return self.recent.get(package, lambda: {f.path: f for f in store.finalized_files(package)})

    def find(self, store: ArtifactStore, package: Package, path: str) -> StoredFile:
        """The file at path of a finalized package; PackageFileNotFoundError if it has none."""
        found = self.files(store, package).get(path)
        if found is None:
            raise PackageFileNotFoundError(f"package {package} has no file {path!r}")
        return found


def many_blobs(
    store: ArtifactStore, package: Package, wanted: object, index: FileIndex
) -> Response:
    """The frames of the blobs wanted names (see the module docstring), streamed in order."""
    found = wanted_blobs(index.files(store, package).values(), wanted, str(package))
    length = sum(len(frame_line(f.content_address, f.size)) + f.size for f in found)
    response = Response(_frames(store, package, found), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(length)
    return response


def _frames(store: ArtifactStore, package: Package, found: list[StoredFile]) -> Iterator[bytes]:
    """Each blob's frame, read whole (at most MAX_BLOB bytes) and checked before it is sent;
    the first that fails the check or cannot be read ends the answer there. The blobs of the
    small tier are read many to a query (`small_blobs`), the others one by one."""
    contents = iter(store.dataplane.small_blobs([(f.content_address, f.size) for f in found]))
    for stored in found:
        label = f"{package} {stored.path}"
        try:
            read_ahead = next(contents)  # one answer per file, in order
            if read_ahead is None:
                with store.open_file(stored, label) as reader:
                    data = reader.read()
            else:
                data = _checked(stored, read_ahead, label)
        except ArtifactStoreError as exc:
            # The answer has started: a log line is all that is left.
            _log.error("sending %s failed: %s", label, exc)
            return
        yield frame_line(stored.content_address, stored.size) + data


def _checked(stored: StoredFile, data: bytes, label: str) -> bytes:
    """data if it is stored's bytes (size and BLAKE3, as open_file checks), else IntegrityError."""
    actual = blake3.blake3(data).hexdigest()
    if len(data) != stored.size or actual != stored.blake3.hex:
        raise IntegrityError(
            f"{label}: expected {stored.size} bytes with {stored.content_address}, "
            f"read {len(data)} bytes with blake3:{actual}"
        )
    return data
