"""Consistency checks: re-hash every blob a package names, and prove the event chain.

Checks return findings instead of raising, so one run lists every problem (package, path,
expected vs actual) and the caller decides what failing means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from artifactstore.dataplane.spi import DataPlane
from artifactstore.events.log import ChainReport
from artifactstore.manifest import codec
from artifactstore.registry import Package, StoredFile


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


def check_package(
    dataplane: DataPlane,
    package: Package,
    files: Iterable[StoredFile],
    manifest: bytes | None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, list[Problem]]:
    """Re-hash every file of a package; returns (files, bytes, problems)."""
    problems: list[Problem] = []
    if package.is_finalized:
        problems.extend(_check_manifest(package, manifest))
    count = total = 0
    for stored in files:
        result = dataplane.verify_object(
            stored.content_address, expected_sha256=stored.sha256, expected_size=stored.size
        )
        count += 1
        total += stored.size
        if progress is not None:
            progress(stored.size)
        if not result.ok:
            problems.append(
                Problem(str(package), stored.path, f"{stored.content_address}: {result.problem}")
            )
    return count, total, problems


def _check_manifest(package: Package, manifest: bytes | None) -> list[Problem]:
    if manifest is None:
        return [Problem(str(package), None, "finalized but its manifest is missing")]
    actual = str(codec.manifest_digest_of_bytes(manifest))
    if actual != package.manifest_digest:
        return [
            Problem(
                str(package),
                None,
                f"manifest digest expected {package.manifest_digest}, got {actual}",
            )
        ]
    return []


def chain_problems(report: ChainReport) -> list[Problem]:
    """The event-chain report as problems (empty when the chain holds)."""
    if report.ok:
        return []
    return [Problem("event log", None, report.problem or "chain broken")]
