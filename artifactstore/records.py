"""The values the library hands back and takes, with no database behind them: packages, their
files, push results, verify reports, and how a re-push compares with a stored version.

The local store makes them from its tables (`registry`, `publish`, `audit`); the remote client
(`artifactstore.remote`) makes the same ones from the server's answers without importing
SQLAlchemy, so a `--server` command starts quickly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from artifactstore.identity import ContentAddress, Digest
from artifactstore.manifest import reader
from artifactstore.manifest.model import Metadata, validate_metadata

if TYPE_CHECKING:
    from artifactstore.events.log import ChainReport

Source = bytes | str | os.PathLike[str] | BinaryIO | Iterable[bytes]
"""What ingest_file accepts: bytes, a filesystem path, a binary file object, or chunks."""


@dataclass(frozen=True, slots=True)
class Package:
    """A package as the registry knows it; `state` is 'open', 'finalized', or the end it came
    to: 'abandoned', 'expired' or 'deleted' (a tombstone: its name is kept, its files gone).

    A finalized package may be under a hold (`hold_reason`); `expires_at` is when its class
    lets it expire (None: never, or not finalized yet). `file_count` and `size` (bytes) are
    counted by listings (list_packages), None elsewhere.
    """

    id: str
    name: str
    version: str
    state: str
    retention_class: str
    metadata: Metadata
    created_at: str
    finalized_at: str | None
    manifest_digest: str | None
    expires_at: str | None = None
    hold_reason: str | None = None
    ended_at: str | None = None
    file_count: int | None = None
    size: int | None = None

    @property
    def is_finalized(self) -> bool:
        """True once the package is immutable (and until it ends)."""
        return self.state == "finalized"

    @property
    def is_ended(self) -> bool:
        """True for the tombstone of an abandoned, expired or deleted package."""
        return self.state in ENDED_STATES

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


ENDED_STATES = frozenset({"abandoned", "expired", "deleted"})
LEGAL_HOLD = "legal-hold"
"""The retention class that keeps a package as a hold does."""

PackageRef = Package | str | tuple[str, str]
"""A package given as the object, its id, a (name, version) pair, or one text: 'NAME:VERSION',
or 'NAME@blake3:<hex>' for the version whose manifest has that digest."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file of a package: path, digests, size, executable bit and where its blob is."""

    path: str
    size: int
    blake3: Digest
    sha256: Digest
    executable: bool
    backend_id: str

    @property
    def content_address(self) -> ContentAddress:
        """The content address of the file's blob."""
        return ContentAddress.of(self.blake3)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing found wrong: in which package, at which path (if any), and what."""

    package: str
    path: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.package} {self.path}" if self.path else self.package
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Everything a verify run checked and every problem it found."""

    packages: int
    files: int
    bytes: int
    problems: tuple[Problem, ...]
    chain: ChainReport | None = None

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return not self.problems


FileFacts = tuple[str, int, str, str, bool]
"""What a push says of one file: path, size, BLAKE3 hex, SHA-256 hex, executable."""


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: the version, its manifest digest, whether the push created it, its size,
    and its finalize event.

    `sequence` and `chain_digest` (hex) are those of the version's v1.package.finalized event:
    a checkpoint of the log that proves, later, that the version was not rewritten.
    """

    name: str
    version: str
    digest: ContentAddress
    created: bool
    sequence: int
    chain_digest: str
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """A re-push compared with the stored version: the first difference, or None; and its size."""

    difference: str | None
    files: int
    bytes: int


def compare(
    manifest: bytes,
    current_class: str,
    pushed: Iterable[FileFacts],
    retention_class: str,
    metadata: Metadata,
) -> Comparison:
    """Compare a finalized version's manifest with a push of it, both sorted by path bytes."""
    count = total = 0
    difference: str | None = None
    stored = reader.files(manifest)
    kept = next(stored, None)
    # Both lists are in path order, so the first difference found is the first in that order;
    # the walk stops there (the pushed files may be hashed lazily: no more hashing after it).
    for path, size, blake3_hex, sha256_hex, executable in pushed:
        key = path.encode()
        if kept is not None and kept.path.encode() < key:
            difference = f"file {kept.path!r} of the stored version is missing"
        elif kept is None or kept.path.encode() != key:
            difference = f"file {path!r} is not in the stored version"
        elif (kept.size, kept.blake3.hex, kept.sha256.hex) != (size, blake3_hex, sha256_hex):
            difference = f"file {path!r} has a different content"
        elif kept.executable != executable:
            difference = f"file {path!r} has a different executable bit"
        if difference is not None:
            return Comparison(difference, count, total)
        count += 1
        total += size
        kept = next(stored, None)
    if kept is not None:
        difference = f"file {kept.path!r} of the stored version is missing"
    if difference is None and retention_class != current_class:
        difference = (
            f"retention class {retention_class!r} (the stored version has {current_class!r})"
        )
    if difference is None:
        stored_metadata = reader.small_maps(manifest)["package"]["metadata"]
        if validate_metadata(stored_metadata) != metadata:
            difference = "different metadata"
    return Comparison(difference, count, total)
