"""What the CLI writes: each command's result as text or JSON, and a progress line.

Kept apart from the commands so the commands read as parse, call, render. Results go to stdout, as
tab-separated or `key: value` text, or with `--json` as JSON with sorted keys; progress goes to
stderr and only when stderr is a terminal, so pipes and CI logs see nothing but the result.
Library types are imported for annotations only: `version` must not pay for SQLAlchemy.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self, TextIO

import click

from artifactstore import __version__

if TYPE_CHECKING:
    from artifactstore import (
        CopyReport,
        Event,
        HealthReport,
        LogHead,
        Manifest,
        Package,
        PushResult,
        ReplayReport,
        StoredFile,
        Token,
        VerifyReport,
    )

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
# Redraw at most this often: a terminal cannot show more, and each redraw costs a write.
_REDRAW_SECONDS = 0.1


def emit_json(value: object) -> None:
    """Print value as one line of JSON with sorted keys (stable for scripts and diffs)."""
    click.echo(json.dumps(value, sort_keys=True, ensure_ascii=False))


def human_bytes(count: float) -> str:
    """A byte count in binary units with one decimal: '1.5 MiB'."""
    for unit in _UNITS:
        if abs(count) < 1024 or unit == _UNITS[-1]:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable: the loop returns at the last unit")


def version(as_json: bool) -> None:
    """`version`: 'artifactstore X.Y.Z'."""
    if as_json:
        emit_json({"version": __version__})
    else:
        click.echo(f"artifactstore {__version__}")


def migrated(url: str, fresh: bool, before: str | None, after: str | None, as_json: bool) -> None:
    """`migrate`: the schema revision the database is at now, and before."""
    if as_json:
        emit_json({"database": url, "fresh": fresh, "revision": after, "revision_before": before})
    else:
        click.echo(f"database {url} at schema revision {after} (was {before or 'empty'})")


def health(report: HealthReport, as_json: bool) -> None:
    """`health`: the same document as GET /health, or one line per part."""
    document = report.to_json()
    if as_json:
        emit_json(document)
        return
    database, storage = report.database, report.storage
    click.echo(f"status: {document['status']}")
    click.echo(
        f"database: {'ok' if database.ok else 'FAILING'} {database.dialect} {database.url} "
        f"schema {database.schema_revision or 'none'}: {database.detail}"
    )
    free = "unknown" if storage.free_bytes is None else human_bytes(storage.free_bytes)
    click.echo(
        f"storage: {'ok' if storage.reachable else 'FAILING'} {storage.backend_id} "
        f"{free} free: {storage.detail}"
    )


def storage_copied(report: CopyReport, as_json: bool) -> None:
    """`migrate-storage`: how many blobs were copied or there already, and each problem."""
    if as_json:
        emit_json(
            {
                "blobs": report.blobs,
                "copied": report.copied,
                "ok": report.ok,
                "present": report.present,
                "problems": report.problems,
            }
        )
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    click.echo(
        f"{report.blobs} blobs: {report.copied} copied, {report.present} there already, "
        f"{len(report.problems)} problems"
    )


def replay(report: ReplayReport, check: bool, as_json: bool) -> None:
    """`replay`: how many events were applied and whether the views came out identical."""
    if as_json:
        emit_json(
            {
                "check": check,
                "differences": list(report.differences),
                "events": report.events,
                "problems": [str(problem) for problem in report.problems],
                "identical": report.identical,
                "state_digest_after": report.digest_after,
                "state_digest_before": report.digest_before,
            }
        )
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    for difference in report.differences:
        click.echo(f"differs: {difference}")
    if report.identical:
        click.echo(f"replayed {report.events} events: views identical ({report.digest_after})")
    elif check:
        click.echo(
            f"replayed {report.events} events: views differ from the log "
            f"({report.digest_before} != {report.digest_after}); run 'artifactstore replay'"
        )
    else:
        click.echo(f"replayed {report.events} events: views rebuilt ({report.digest_after})")


def pushed(result: PushResult, as_json: bool) -> None:
    """`push`: the manifest digest alone (for `$(artifactstore push ...)`), or a summary."""
    digest = str(result.digest)
    if as_json:
        emit_json(
            {
                "bytes": result.bytes,
                "chain_digest": f"blake3:{result.chain_digest}",
                "created": result.created,
                "digest": digest,
                "files": result.files,
                "manifest_digest": digest,
                "name": result.name,
                "sequence": result.sequence,
                "version": result.version,
            }
        )
    else:
        click.echo(digest)


def checkpoint(head: LogHead, as_json: bool) -> None:
    """`checkpoint`: the log head as SEQ:blake3:<hex>, the form --checkpoint takes."""
    if as_json:
        emit_json({"chain_digest": f"blake3:{head.chain_digest}", "sequence": head.sequence})
    else:
        click.echo(f"{head.sequence}:blake3:{head.chain_digest}")


def pulled(package: Package, files: Sequence[StoredFile], dest: Path, as_json: bool) -> None:
    """`pull`: what was written where."""
    total = sum(f.size for f in files)
    if as_json:
        emit_json(
            {
                "bytes": total,
                "destination": str(dest),
                "files": len(files),
                "manifest_digest": package.manifest_digest,
                "name": package.name,
                "version": package.version,
            }
        )
    else:
        click.echo(f"pulled {len(files)} files ({human_bytes(total)}) into {dest}")


def verified(report: VerifyReport, as_json: bool) -> None:
    """`verify`: one 'problem:' line per problem, then what was checked and the outcome."""
    chain = report.chain
    if as_json:
        emit_json(
            {
                "bytes": report.bytes,
                "chain": None
                if chain is None
                else {"checked": chain.checked, "ok": chain.ok, "problem": chain.problem},
                "files": report.files,
                "ok": report.ok,
                "packages": report.packages,
                "problems": [
                    {"message": p.message, "package": p.package, "path": p.path}
                    for p in report.problems
                ],
            }
        )
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    checked = (
        f"{_count(report.packages, 'package')}, {_count(report.files, 'file')}, "
        f"{human_bytes(report.bytes)}"
    )
    if chain is not None:
        checked += f", {chain.checked} events"
    outcome = "ok" if report.ok else _count(len(report.problems), "problem")
    click.echo(f"verified {checked}: {outcome}")


def packages(found: Sequence[Package], as_json: bool) -> None:
    """`ls`: name:version, state, retention class and manifest digest, tab-separated."""
    if as_json:
        emit_json([package_json(p) for p in found])
        return
    for p in found:
        click.echo(f"{p}\t{p.state}\t{p.retention_class}\t{p.manifest_digest or '-'}")


def package_json(package: Package) -> dict[str, object]:
    """One package as `ls --json` and the HTTP API write it."""
    return {
        "created_at": package.created_at,
        "ended_at": package.ended_at,
        "expires_at": package.expires_at,
        "finalized_at": package.finalized_at,
        "hold_reason": package.hold_reason,
        "id": package.id,
        "manifest_digest": package.manifest_digest,
        "metadata": dict(package.metadata),
        "name": package.name,
        "retention_class": package.retention_class,
        "state": package.state,
        "version": package.version,
    }


def file_json(found: StoredFile) -> dict[str, object]:
    """One file as `show` of an open package and the HTTP API write it."""
    return {
        "content_address": str(found.content_address),
        "executable": found.executable,
        "path": found.path,
        "sha256": str(found.sha256),
        "size": found.size,
    }


def open_package(package: Package, files: Sequence[StoredFile]) -> None:
    """`show` of an open package: the package, state 'open', and its files so far, as JSON."""
    emit_json({**package_json(package), "files": [file_json(f) for f in files]})


def created(package: Package, as_json: bool) -> None:
    """`create`: the package, open."""
    if as_json:
        emit_json(package_json(package))
    else:
        click.echo(f"created {package} (open)")


def added(ref: str, files: Sequence[StoredFile], as_json: bool) -> None:
    """`add`: how many files (and bytes) the package now holds from PATH."""
    total = sum(f.size for f in files)
    name, _, version = ref.partition(":")
    if as_json:
        emit_json({"bytes": total, "files": len(files), "name": name, "version": version})
    else:
        click.echo(f"added {_count(len(files), 'file')} ({human_bytes(total)}) to {ref}")


def finalized(manifest: Manifest, as_json: bool) -> None:
    """`finalize`: the manifest digest alone, as push prints it, or with the package."""
    digest = str(manifest.digest)
    if as_json:
        package = manifest.package
        emit_json(
            {
                "digest": digest,
                "files": len(manifest.files),
                "manifest_digest": digest,
                "name": package.name,
                "version": package.version,
            }
        )
    else:
        click.echo(digest)


def abandoned(ref: str, as_json: bool) -> None:
    """`abandon`: the package, now abandoned."""
    name, _, version = ref.partition(":")
    if as_json:
        emit_json({"name": name, "state": "abandoned", "version": version})
    else:
        click.echo(f"abandoned {ref}")


def event_json(found: Event) -> dict[str, object]:
    """One event as `events --json` and the HTTP API's /v1/events write it."""
    return {
        "actor": found.actor,
        "chain_digest": found.chain_digest,
        "event_id": found.event_id,
        "event_type": found.event_type,
        "occurred_at": found.occurred_at,
        "package_id": found.package_id,
        "payload": found.payload_value(),
        "sequence": found.sequence,
    }


def event(found: Event, as_json: bool) -> None:
    """`events`: one line per event (JSON Lines with --json), flushed at once for followers."""
    if as_json:
        emit_json(event_json(found))
    else:
        click.echo(
            f"{found.sequence}\t{found.occurred_at}\t{found.event_type}\t"
            f"{found.package_id or '-'}\t{found.actor}"
        )
    # A follower is usually piped into another program that wants each event now.
    sys.stdout.flush()


def _token(found: Token) -> dict[str, object]:
    return {
        "created_at": found.created_at,
        "expires_at": found.expires_at,
        "name": found.name,
        "prefix": found.prefix,
        "revoked_at": found.revoked_at,
        "scope": found.scope,
    }


def token_created(created: Token, secret: str, as_json: bool) -> None:
    """`token create`: the secret alone (for `$(...)`), or the token and its secret.

    The one place a secret is printed.
    """
    if as_json:
        emit_json({**_token(created), "secret": secret})
    else:
        click.echo(secret)


def tokens(found: Sequence[Token], as_json: bool) -> None:
    """`token list`: name, scope, prefix, created, expires, revoked; tab-separated, '-' for none."""
    if as_json:
        emit_json([_token(t) for t in found])
        return
    for t in found:
        fields = (t.name, t.scope, t.prefix, t.created_at, t.expires_at, t.revoked_at)
        click.echo("\t".join(field or "-" for field in fields))


def token_revoked(revoked: Token, as_json: bool) -> None:
    """`token revoke`: the token, now with its revocation time."""
    if as_json:
        emit_json(_token(revoked))
    else:
        click.echo(f"token {revoked.name} revoked at {revoked.revoked_at}")


class Progress:
    """A one-line 'files and bytes, with rate' meter on stderr; silent unless it is a terminal.

    Use as a context manager; call `advance(size)` once per finished file. The totals are
    given here or, once known, to `start`.
    """

    def __init__(
        self,
        label: str,
        total_files: int = 0,
        total_bytes: int = 0,
        stream: TextIO | None = None,
    ) -> None:
        self._label = label
        self._total_files = total_files
        self._total_bytes = total_bytes
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty()
        self._files = 0
        self._bytes = 0
        self._started = time.monotonic()
        self._drawn_at = 0.0

    @classmethod
    def is_wanted(cls) -> bool:
        """True when stderr is a terminal, so callers skip work that only feeds the meter."""
        return sys.stderr.isatty()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._enabled and self._drawn_at:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def start(self, total_files: int, total_bytes: int) -> None:
        """Set the totals the meter counts towards."""
        self._total_files = total_files
        self._total_bytes = total_bytes

    def advance(self, size: int) -> None:
        """Count one more file of size bytes and redraw if enough time has passed."""
        self._files += 1
        self._bytes += size
        now = time.monotonic()
        if self._enabled and now - self._drawn_at >= _REDRAW_SECONDS:
            self._drawn_at = now
            self._draw()

    def _draw(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        line = (
            f"{self._label}: {self._files}/{self._total_files} files, "
            f"{human_bytes(self._bytes)}/{human_bytes(self._total_bytes)}, "
            f"{human_bytes(self._bytes / elapsed)}/s"
        )
        # \r and erase-to-end-of-line redraw in place without scrolling the terminal.
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
