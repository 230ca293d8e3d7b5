"""The commands that end packages and free space: retention, hold, unhold, delete, expire, gc.

They work on a local store (the server runs them for its own, `serve --maintenance-interval`
being the way to automate them); with --server they exit 2.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

import click

from artifactstore import parse_duration
from artifactstore.cli import output
from artifactstore.cli.completion import package_argument
from artifactstore.cli.context import CliState, open_local_store, package_args, pass_state
from artifactstore.cli.terminal import Progress

if TYPE_CHECKING:
    from artifactstore import GcReport, Package


@click.command()
@package_argument("NAME VERSION CLASS")
@pass_state
@click.pass_context
def retention(ctx: click.Context, state: CliState, args: tuple[str, ...]) -> None:
    """Give finalized package NAME VERSION retention class CLASS; its expiry is recomputed
    from its finalize time (release and legal-hold: never).

    \b
    Example:
      artifactstore retention acme/app 1.4.2 release
    """
    ref, (class_name,) = package_args(args, ("CLASS",))
    package = open_local_store(ctx).change_retention(ref, class_name)
    expiry = package.expires_at or "never"
    _changed(package, f"retention {package.retention_class}, expires {expiry}", state.as_json)


@click.command()
@package_argument("NAME VERSION")
@click.option("--reason", required=True, metavar="TEXT", help="Why (one line, kept in the log).")
@pass_state
@click.pass_context
def hold(ctx: click.Context, state: CliState, args: tuple[str, ...], reason: str) -> None:
    """Place a hold on NAME VERSION: until 'unhold', it never expires and cannot be deleted.

    \b
    Example:
      artifactstore hold acme/app 1.4.2 --reason "incident 4711"
    """
    ref, _ = package_args(args)
    package = open_local_store(ctx).hold(ref, reason)
    _changed(package, f"held: {package.hold_reason}", state.as_json)


@click.command()
@package_argument("NAME VERSION")
@pass_state
@click.pass_context
def unhold(ctx: click.Context, state: CliState, args: tuple[str, ...]) -> None:
    """Release the hold on NAME VERSION (a package without one is left as it is).

    \b
    Example:
      artifactstore unhold acme/app 1.4.2
    """
    ref, _ = package_args(args)
    _changed(open_local_store(ctx).unhold(ref), "not held", state.as_json)


@click.command()
@package_argument("NAME VERSION")
@click.option("--yes", is_flag=True, help="Do not ask (needed when stdin is not a terminal).")
@pass_state
@click.pass_context
def delete(ctx: click.Context, state: CliState, args: tuple[str, ...], yes: bool) -> None:
    """End finalized package NAME VERSION now; a held one exits 2.

    Its tombstone stays (ls --all shows it; the version is never reused); its blobs go at the
    next 'gc' unless another package names them.

    \b
    Example:
      artifactstore delete acme/app 1.4.2 --yes
    """
    ref, _ = package_args(args)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("refusing to delete without --yes (stdin is not a terminal)")
        click.confirm(f"delete {ref}? Its files will be gone", abort=True, err=True)
    _changed(open_local_store(ctx).delete_package(ref), "deleted", state.as_json)


@click.command()
@click.option("--dry-run", is_flag=True, help="Only list what would expire.")
@click.option("--as-of", metavar="TIME", help="Judge expiry at TIME (RFC 3339), not now.")
@pass_state
@click.pass_context
def expire(ctx: click.Context, state: CliState, dry_run: bool, as_of: str | None) -> None:
    """End every finalized package whose retention has run out; held ones are kept.

    Prints each one ended (name:version and its expiry), then a count.

    \b
    Example:
      artifactstore expire --dry-run --as-of 2027-01-01T00:00:00Z
    """
    when = _time(as_of) if as_of is not None else None
    ended = []
    for package in open_local_store(ctx).expire(when, dry_run):
        ended.append(package)
        if not state.as_json:
            click.echo(f"{package}\t{package.expires_at}")
    if state.as_json:
        output.emit_json(
            {"dry_run": dry_run, "expired": [f"{p}" for p in ended], "count": len(ended)}
        )
    elif not state.quiet:
        verb = "would expire" if dry_run else "expired"
        click.echo(f"{verb} {len(ended)} package{'' if len(ended) == 1 else 's'}", err=True)


@click.command()
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Keep unneeded blobs stored more recently than this (90s, 30m, 1h, 7d; 0 allowed).",
)
@pass_state
@click.pass_context
def gc(ctx: click.Context, state: CliState, dry_run: bool, grace: str) -> None:
    """Remove the blobs no open or finalized package names and no push in flight holds.

    Safe while pushes and pulls run, and when killed at any instant (run it again). Also
    removes expired upload sessions and temp files left by killed writers.

    \b
    Example:
      artifactstore gc --grace 1h
    """
    kept_for = parse_duration(grace)
    store = open_local_store(ctx)
    with Progress("gc", quiet=state.quiet) as progress:
        report = store.gc(kept_for, dry_run, progress.advance)
    _collected(report, state.as_json)


def _changed(package: Package, what: str, as_json: bool) -> None:
    if as_json:
        output.emit_json(output.package_json(package))
    else:
        click.echo(f"{package}\t{what}")


def _collected(report: GcReport, as_json: bool) -> None:
    if as_json:
        output.emit_json(
            {
                "bytes": report.bytes,
                "dry_run": report.dry_run,
                "objects": report.objects,
                "orphans": report.orphans,
                "sessions": report.sessions,
                "temp_objects": report.temp_objects,
            }
        )
        return
    verb = "would free" if report.dry_run else "freed"
    click.echo(
        f"{verb} {report.objects} blob{'' if report.objects == 1 else 's'} "
        f"({output.human_bytes(report.bytes)}; {report.orphans} orphaned), "
        f"{report.sessions} expired upload session(s), {report.temp_objects} temp object(s)"
    )


def _time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise click.BadParameter(
            f"{text!r} is not an RFC 3339 time with a zone (2027-01-01T00:00:00Z)",
            param_hint="'--as-of'",
        )
    return when


COMMANDS = (retention, hold, unhold, delete, expire, gc)
