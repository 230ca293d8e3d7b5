"""Consistency checks: re-hash every blob a package names, and report what the log check found.

Checks return findings instead of raising, so one run lists every problem (package, path,
expected vs actual) and the caller decides what failing means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from artifactstore.dataplane.spi import DataPlane
from artifactstore.events.log import ChainReport
from artifactstore.registry import StoredFile


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


def check_files(
    dataplane: DataPlane,
    label: str,
    files: Iterable[StoredFile],
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, list[Problem]]:
    """Re-hash every file's blob with both digests; returns (files, bytes, problems)."""
    problems: list[Problem] = []
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
                Problem(label, stored.path, f"{stored.content_address}: {result.problem}")
            )
    return count, total, problems


def chain_problems(report: ChainReport) -> list[Problem]:
    """The log check's findings as problems (empty when the log holds)."""
    return [Problem("event log", None, str(problem)) for problem in report.problems]
