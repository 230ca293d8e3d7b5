"""Remote verify: download every file of a version and re-hash it on the client.

The file list is the checked manifest's (`reading`); each file's bytes are hashed with both
digests (BLAKE3 and SHA-256) and their size counted, and compared with the manifest. Findings
are collected as in a local verify, one Problem each, with the same wording: an open package
("not finalized (open)"), a manifest that is not the expected one (the server's JSON listing
is then checked instead), a file the server cannot find, or one whose bytes differ.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import BinaryIO

from artifactstore.errors import IntegrityError, NotFoundError
from artifactstore.identity import digest_stream
from artifactstore.records import Problem, StoredFile, VerifyReport
from artifactstore.remote import reading
from artifactstore.remote.download import download
from artifactstore.remote.fetching import SmallBlobs
from artifactstore.remote.transport import Transport
from artifactstore.remote.values import field, file_from_json, manifest_files


def verify_package(
    transport: Transport,
    located: reading.Located,
    progress: Callable[[int], None] | None,
    expected: str | None,
) -> VerifyReport:
    """Re-hash every file of the version on the client; the report lists each problem."""
    document = transport.call("GET", located.route)
    label = str(located)
    problems: list[Problem] = []
    state = field(document, "state", str, f"GET {located.route}")
    files: list[StoredFile] | None = None
    if state != "finalized":
        problems.append(Problem(label, None, f"not finalized ({state})"))
    else:
        try:
            data = reading.manifest_bytes(transport, located, expected)
            files = manifest_files(reading.decode(located, data))
        except IntegrityError as exc:
            problems.append(Problem(label, None, str(exc)))
    if files is None:
        listed = field(document, "files", list, f"GET {located.route}")
        files = [file_from_json(item, f"GET {located.route}") for item in listed]
    total = 0
    download = functools.partial(_download, transport, located)
    with SmallBlobs(transport, located.route, files, download) as blobs:
        for stored in files:
            found = _check(blobs, stored)
            total += stored.size
            if progress is not None:
                progress(stored.size)
            if found is not None:
                problems.append(Problem(label, stored.path, f"{stored.content_address}: {found}"))
    return VerifyReport(1, len(files), total, tuple(problems))


def _download(transport: Transport, located: reading.Located, stored: StoredFile) -> BinaryIO:
    """The bytes of one file, in a request of their own."""
    return download(transport, located.route, stored, f"{located} {stored.path}")


def _check(blobs: SmallBlobs, stored: StoredFile) -> str | None:
    """What is wrong with the bytes the server sends for one file, or None."""
    try:
        with blobs.open(stored) as source:
            actual = digest_stream(source)
    except NotFoundError:
        return "missing"
    except IntegrityError as exc:
        return str(exc)
    problems = []
    if actual.blake3.hex != stored.blake3.hex:
        problems.append(f"blake3 mismatch: expected {stored.blake3.hex} got {actual.blake3.hex}")
    if actual.sha256.hex != stored.sha256.hex:
        problems.append(f"sha256 mismatch: expected {stored.sha256.hex} got {actual.sha256.hex}")
    if actual.size != stored.size:
        problems.append(f"size mismatch: expected {stored.size} got {actual.size}")
    return "; ".join(problems) or None
