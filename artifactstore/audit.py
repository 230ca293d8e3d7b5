"""Consistency checks: re-hash every blob a package names, check the log, rebuild the views.

Checks return findings instead of raising, so one run lists every problem (package, path,
expected vs actual) and the caller decides what failing means. `replay` rebuilds (or, with
check, only compares) the views from the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from artifactstore import registry, trust
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane
from artifactstore.errors import IntegrityError
from artifactstore.events import log
from artifactstore.events import replay as rebuild
from artifactstore.events.log import ChainReport
from artifactstore.records import Package, Problem, StoredFile, VerifyReport


def check_files(
    dataplane: DataPlane,
    label: str,
    files: Iterable[StoredFile],
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, list[Problem]]:
    """Re-hash every file's blob with both digests; returns (files, bytes, problems)."""
    problems: list[Problem] = []
    count = total = 0
    listed = list(files)
    expected = ((f.content_address, f.sha256, f.size) for f in listed)
    for stored, result in zip(listed, dataplane.verify_objects(expected), strict=True):
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


def verify_package(
    db: Database,
    dataplane: DataPlane,
    package: Package,
    progress: Callable[[int], None] | None,
    expect_digest: str | None,
    open_is_ok: bool,
) -> VerifyReport:
    """Re-hash a package's blobs; a finalized one's file list comes from its checked manifest.

    A manifest whose digest is not the expected one (or not the one the log fixed) is a
    problem, and then the view rows are checked instead; so is an open package unless
    open_is_ok. An ended package is PackageStateError: there is nothing left to verify.
    """
    trust.require_not_ended(package)
    problems: list[Problem] = []
    with db.read() as connection:
        if package.is_finalized:
            try:
                event = trust.finalize_event(connection, package, expect_digest)
                files = trust.manifest_files(event.payload)
            except IntegrityError as exc:
                problems.append(Problem(str(package), None, str(exc)))
                files = registry.package_files(connection, package.id)
        else:
            if not open_is_ok:
                problems.append(Problem(str(package), None, "not finalized (open)"))
            files = registry.package_files(connection, package.id)
    count, total, found = check_files(dataplane, str(package), files, progress)
    return VerifyReport(1, count, total, tuple(problems + found))


def verify_store(
    db: Database,
    dataplane: DataPlane,
    progress: Callable[[int], None] | None,
    checkpoints: Mapping[int, str] | None,
) -> VerifyReport:
    """Verify every package's blobs, the log (chain, rules, checkpoints) and the views."""
    packages = files = total = 0
    problems: list[Problem] = []
    with db.read() as connection:
        listed = registry.list_packages(connection, None)
    for package in listed:
        report = verify_package(db, dataplane, package, progress, None, open_is_ok=True)
        packages += 1
        files += report.files
        total += report.bytes
        problems.extend(report.problems)
    with db.read() as connection:
        chain = log.verify_chain(connection, checkpoints)
    problems.extend(chain_problems(chain))
    if chain.ok:
        # Only a sound log can say what the views should be.
        replayed = replay(db, check=True)
        problems.extend(Problem("views", None, d) for d in replayed.differences)
    return VerifyReport(packages, files, total, tuple(problems), chain)


def replay(db: Database, check: bool = False, force: bool = False) -> rebuild.ReplayReport:
    """Rebuild every view from the log under the log lock; with check, change nothing."""
    with db.write() as connection:
        report = rebuild.replay(connection, check, force)
        if check:
            connection.rollback()
        return report
