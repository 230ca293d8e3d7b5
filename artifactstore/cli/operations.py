"""The commands that run the store: version, migrate, health, replay, checkpoint, serve,
migrate-storage."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from artifactstore import ENV_PREFIX, parse_duration
from artifactstore.cli import output
from artifactstore.cli.context import CliState, open_local_store, pass_state, require_local
from artifactstore.cli.failures import EXIT_CHECK_FAILED

if TYPE_CHECKING:
    from artifactstore import ArtifactStore, Settings


@click.command()
@pass_state
def version(state: CliState) -> None:
    """Print the artifactstore version.

    \b
    Example:
      artifactstore version
    """
    output.version(state.as_json)


@click.command()
@click.option("--fresh", is_flag=True, help="Drop every table first, then recreate them.")
@click.option("--yes", is_flag=True, help="Do not ask before --fresh drops the tables.")
@pass_state
@click.pass_context
def migrate(ctx: click.Context, state: CliState, fresh: bool, yes: bool) -> None:
    """Upgrade the database schema to the revision this version needs.

    Works on a database that is behind, which every other command refuses. --fresh drops all
    tables (every package and event; blobs stay on disk) and recreates them: it asks first,
    and without a terminal to ask on it needs --yes.

    \b
    Example:
      artifactstore --db postgresql://ci@db.example/artifacts migrate
    """
    require_local(ctx)
    url = state.settings.redacted_database_url
    if fresh and not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("--fresh deletes every package and event; add --yes")
        if not click.confirm(f"Delete every package and event in {url}?", err=True):
            raise click.UsageError("not confirmed; nothing was changed")
    from artifactstore import migrate_database

    before, after = migrate_database(state.settings, fresh)
    if state.informs:
        output.migrated(url, fresh, before, after, state.as_json)


@click.command()
@pass_state
@click.pass_context
def health(ctx: click.Context, state: CliState) -> None:
    """Check the database and the blob storage; exit 1 if unhealthy.

    A SQLite store that does not exist is not unhealthy but misconfigured: exit 2, "no store
    at ...", and nothing is created.

    \b
    Example:
      artifactstore health || echo "store is unhealthy"
    """
    from artifactstore import ArtifactStoreError, StoreNotFoundError, check_health

    try:
        opened: ArtifactStore | ArtifactStoreError = open_local_store(ctx)
    except StoreNotFoundError:
        raise
    except ArtifactStoreError as exc:
        opened = exc
    report = check_health(state.settings, opened)
    output.health(report, state.as_json)
    if not report.ok:
        ctx.exit(EXIT_CHECK_FAILED)


@click.command()
@click.option("--check", is_flag=True, help="Only compare the rebuilt views; change nothing.")
@click.option("--force", is_flag=True, help="Rebuild even from a broken log, skipping bad events.")
@pass_state
@click.pass_context
def replay(ctx: click.Context, state: CliState, check: bool, force: bool) -> None:
    """Rebuild the view tables from the event log, the source of truth.

    With --check nothing is changed, and the exit code is 1 if the views differ from what the
    log says they should be (each differing table and package is named). A log with a gap, a
    broken hash chain or an event the package rules forbid is refused (exit 1, naming the
    first bad sequence) unless --force is given.

    \b
    Example:
      artifactstore replay --check
    """
    report = open_local_store(ctx).replay(check=check, force=force)
    output.replay(report, check, state.as_json, state.informs)
    if check and not report.identical:
        ctx.exit(EXIT_CHECK_FAILED)


@click.command()
@pass_state
@click.pass_context
def checkpoint(ctx: click.Context, state: CliState) -> None:
    """Print the log head as SEQ:blake3:<hex>: its last sequence and chain digest.

    Keep it somewhere the store's operators cannot write; 'verify --all --checkpoint' proves
    later that the log up to SEQ was not rewritten.

    \b
    Example:
      artifactstore checkpoint > checkpoint.txt
    """
    output.checkpoint(open_local_store(ctx).checkpoint(), state.as_json)


@click.command("migrate-storage")
@click.option("--to", "target", required=True, metavar="URL", help="The storage to copy to.")
@pass_state
@click.pass_context
def migrate_storage(ctx: click.Context, state: CliState, target: str) -> None:
    """Copy every blob to the storage at URL, verifying each; exit 1 if one cannot be.

    Blobs the target has already are skipped, so a run that stopped resumes. The registry is
    not changed: once a run reports no problem, point --storage (or the environment) at URL.

    \b
    Example:
      artifactstore migrate-storage --to 's3://artifacts/store?region=eu-west-1'
    """
    from artifactstore import copy_blobs

    report = copy_blobs(open_local_store(ctx), target)
    output.storage_copied(report, state.as_json, state.informs)
    if not report.ok:
        ctx.exit(EXIT_CHECK_FAILED)


def _serve_environment(settings: Settings) -> dict[str, str]:
    environ = dict(os.environ)
    environ[f"{ENV_PREFIX}DATABASE_URL"] = settings.database_url
    environ[f"{ENV_PREFIX}STORAGE_URL"] = settings.storage_url
    environ[f"{ENV_PREFIX}LOG_LEVEL"] = settings.log_level
    return environ


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="Processes.")
@click.option(
    "--timeout",
    default=600,
    show_default=True,
    type=click.IntRange(1),
    help="Seconds a request may take before its worker is restarted (large uploads).",
)
@click.option(
    "--anonymous-read", is_flag=True, help="Let /v1 reads go without a token (writes never)."
)
@click.option(
    "--maintenance-interval",
    metavar="DURATION",
    help="Run expire and gc this often (one worker at a time, by a database lease).",
)
@click.option(
    "--gc-grace",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="The grace period of the periodic gc.",
)
@pass_state
@click.pass_context
def serve(
    ctx: click.Context,
    state: CliState,
    host: str,
    port: int,
    workers: int,
    timeout: int,
    anonymous_read: bool,
    maintenance_interval: str | None,
    gc_grace: str,
) -> None:
    """Run the HTTP app (GET /health, the /v1 package API) under gunicorn.

    gunicorn replaces this process; the settings reach the app through the ARTIFACTSTORE_*
    environment variables. Reads need a token ('artifactstore token create') unless
    --anonymous-read is given; the flag alone decides, an inherited
    ARTIFACTSTORE_ANONYMOUS_READ is overridden.

    \b
    Example:
      artifactstore --db postgresql://as@db/artifacts serve --host 0.0.0.0 --port 8080
    """
    require_local(ctx)
    if (
        maintenance_interval is not None
        and parse_duration(maintenance_interval).total_seconds() < 1
    ):
        raise click.BadParameter("must be at least 1s", param_hint="'--maintenance-interval'")
    parse_duration(gc_grace)
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}"]
    # A sync worker busy with one request longer than gunicorn's timeout (30 s by default) is
    # killed: a large upload or download on a slow link needs far more.
    argv += ["--workers", str(workers), "--timeout", str(timeout)]
    # gunicorn's control socket is one path per user (~/.gunicorn/gunicorn.ctl): a second
    # server takes it over, and stopping either deletes it under the other. Nothing here uses
    # it, so it is off.
    argv += ["--no-control-socket", "artifactstore.web:create_app()"]
    # exec, not a child: signals from a supervisor reach gunicorn's arbiter directly.
    environ = _serve_environment(state.settings)
    environ[f"{ENV_PREFIX}ANONYMOUS_READ"] = "1" if anonymous_read else "0"
    environ[f"{ENV_PREFIX}MAINTENANCE_INTERVAL"] = maintenance_interval or ""
    environ[f"{ENV_PREFIX}MAINTENANCE_GRACE"] = gc_grace
    os.execve(sys.executable, argv, environ)


COMMANDS = (version, migrate, health, replay, checkpoint, serve, migrate_storage)
