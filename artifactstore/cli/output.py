"""What the CLI writes: each command's result as text or JSON, and a progress line.

Kept apart from the commands so the commands read as parse, call, render. Results go to stdout,
as tab-separated or `key: value` text, or with `--json` as JSON in one style (`json_text`:
sorted keys, no spaces). The progress line and the
terminal checks are in `terminal`.
Library types are imported for annotations only: `version` must not pay for SQLAlchemy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from artifactstore import __version__

if TYPE_CHECKING:
    from artifactstore import (
        ArtifactStore,
        CopyReport,
        Event,
        HealthReport,
        LogHead,
        Package,
        PushResult,
        RemoteStore,
        ReplayReport,
        StoredFile,
        Token,
        VerifyReport,
    )

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def json_text(value: object) -> str:
    """value as the one JSON style of the CLI: one line, sorted keys, no spaces, UTF-8 as is.

    The separators are JCS's, so `show`'s manifest and every other document look alike.
    """
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def emit_json(value: object) -> None:
    """Print value as one line of JSON in the one style (json_text) for scripts and diffs."""
    click.echo(json_text(value))


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


def storage_copied(report: CopyReport, as_json: bool, informs: bool = True) -> None:
    """`migrate-storage`: how many blobs were copied or there already, and each problem
    (the summary line only if informs: not under -q)."""
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
    if informs:
        click.echo(
            f"{report.blobs} blobs: {report.copied} copied, {report.present} there already, "
            f"{len(report.problems)} problems"
        )


def replay(report: ReplayReport, check: bool, as_json: bool, informs: bool = True) -> None:
    """`replay`: how many events were applied and whether the views came out identical (under
    -q, not informs, only problems, differences and views that differ)."""
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
        if informs:
            click.echo(f"replayed {report.events} events: views identical ({report.digest_after})")
    elif check:
        click.echo(
            f"replayed {report.events} events: views differ from the log "
            f"({report.digest_before} != {report.digest_after}); run 'artifactstore replay'"
        )
    elif informs:
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
    """`pull`: what was written where; with --json, each file written."""
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
                "written": [file_json(f) for f in files],
            }
        )
    else:
        click.echo(f"pulled {_count(len(files), 'file')} ({human_bytes(total)}) into {dest}")


def verified(report: VerifyReport, as_json: bool, informs: bool = True) -> None:
    """`verify`: one 'problem:' line per problem, then what was checked and the outcome (that
    line not under -q, when informs is False)."""
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
    if informs:
        click.echo(f"verified {checked}: {outcome}")


def packages(found: Sequence[Package], as_json: bool) -> None:
    """`ls`: name:version, state, retention class, size, finalize time and manifest digest,
    tab-separated ('-' for none)."""
    if as_json:
        emit_json([package_json(p) for p in found])
        return
    for p in found:
        size = "-" if p.size is None else human_bytes(p.size)
        click.echo(
            f"{p}\t{p.state}\t{p.retention_class}\t{size}\t{p.finalized_at or '-'}\t"
            f"{p.manifest_digest or '-'}"
        )


def latest(found: Package, as_json: bool) -> None:
    """`ls --latest`: the package as one `ls` line, or with --json its object (not a list)."""
    if as_json:
        emit_json(package_json(found))
    else:
        packages([found], as_json)


def files(found: Sequence[StoredFile], as_json: bool) -> None:
    """`ls NAME VERSION`: path, size in bytes, executable ('x' or '-'), content address."""
    if as_json:
        emit_json([file_json(f) for f in found])
        return
    for f in found:
        click.echo(f"{f.path}\t{f.size}\t{'x' if f.executable else '-'}\t{f.content_address}")


def package_json(package: Package) -> dict[str, object]:
    """One package as `ls --json` and the HTTP API write it."""
    return {
        "created_at": package.created_at,
        "ended_at": package.ended_at,
        "expires_at": package.expires_at,
        "file_count": package.file_count,
        "finalized_at": package.finalized_at,
        "hold_reason": package.hold_reason,
        "id": package.id,
        "manifest_digest": package.manifest_digest,
        "metadata": dict(package.metadata),
        "name": package.name,
        "retention_class": package.retention_class,
        "size": package.size,
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


def finalized(result: PushResult, as_json: bool) -> None:
    """`finalize`: what push prints: the manifest digest alone, or with --json the same
    document (created: this call finalized it; the finalize event's sequence and chain)."""
    pushed(result, as_json)


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


def event(found: Event, package: str | None, as_json: bool) -> None:
    """`events`: one line per event (JSON Lines with --json), flushed at once for followers.

    package is its name:version for the text line ('-' for an event of no package).
    """
    if as_json:
        emit_json(event_json(found))
    else:
        click.echo(
            f"{found.sequence}\t{found.occurred_at}\t{found.event_type}\t"
            f"{package or '-'}\t{found.actor}"
        )
    # A follower is usually piped into another program that wants each event now.
    sys.stdout.flush()


class PackageNames:
    """name:version for the package ids of events, listed from the store when one is new."""

    def __init__(self, store: ArtifactStore | RemoteStore) -> None:
        self._store = store
        self._names: dict[str, str] = {}

    def label(self, package_id: str | None) -> str | None:
        """The package's name:version; its id if the store no longer lists it; None for none."""
        if package_id is None:
            return None
        if package_id not in self._names:
            listed = self._store.list_packages(include_ended=True)
            self._names.update((p.id, str(p)) for p in listed)
        return self._names.get(package_id, package_id)


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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
