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
import threading
from collections import OrderedDict
from collections.abc import Iterator

from flask import Response

from artifactstore import (
    ArtifactStore,
    ArtifactStoreError,
    Package,
    PackageFileNotFoundError,
    StoredFile,
    frame_line,
    wanted_blobs,
)

_log = logging.getLogger(__name__)


class FileIndex:
    """The files of recently read manifests, keyed by manifest digest.

    A pull asks for every file of a package; reading and checking the manifest for each
    request made a pull quadratic in the number of files (0.2 s per file of a 2,000-file
    package). A digest names one manifest forever, so what was read for it stays true: a
    package whose recorded digest changes (tampering) misses the index and is read and checked
    again. At most max_files entries are kept, oldest manifest dropped first.
    """

    def __init__(self, max_files: int = 50_000) -> None:
        self._max_files = max_files
        self._by_digest: OrderedDict[str, dict[str, StoredFile]] = OrderedDict()
        self._lock = threading.Lock()

    def files(self, store: ArtifactStore, package: Package) -> dict[str, StoredFile]:
        """The files of a finalized package by path, from its checked manifest."""
        digest = str(package.manifest_digest)
        with self._lock:
            files = self._by_digest.get(digest)
            if files is not None:
                self._by_digest.move_to_end(digest)
                return files
        files = {f.path: f for f in store.finalized_files(package)}
        self._keep(digest, files)
        return files

    def find(self, store: ArtifactStore, package: Package, path: str) -> StoredFile:
        """The file at path of a finalized package; PackageFileNotFoundError if it has none."""
        found = self.files(store, package).get(path)
        if found is None:
            raise PackageFileNotFoundError(f"package {package} has no file {path!r}")
        return found

    def _keep(self, digest: str, files: dict[str, StoredFile]) -> None:
        if len(files) > self._max_files:
            return
        with self._lock:
            self._by_digest[digest] = files
            while sum(len(f) for f in self._by_digest.values()) > self._max_files:
                self._by_digest.popitem(last=False)


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
    the first that fails the check or cannot be read ends the answer there."""
    for stored in found:
        label = f"{package} {stored.path}"
        try:
            with store.open_file(stored, label) as reader:
                data = reader.read()
        except ArtifactStoreError as exc:
            # The answer has started: a log line is all that is left.
            _log.error("sending %s failed: %s", label, exc)
            return
        yield frame_line(stored.content_address, stored.size) + data
