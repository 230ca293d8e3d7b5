"""The `artifactstore` command line: parse, call the store, render.

Settings are read once, in the group callback (`--db`, `--root` or `--storage`, else
ARTIFACTSTORE_* variables, else `./.artifactstore/`), and held in `ctx.obj`; commands open the
store only when they need it, and import the heavy modules (SQLAlchemy, alembic) inside the
command, so `version` and `--help` start fast.

Exit codes (SPEC "CLI"): 0 ok; 1 a check failed (verify, health, replay --check, integrity of
bytes read back); 2 bad usage or input, including a database or storage that cannot be used as
configured; 130 interrupted. `EXIT_CODES` is the one table from errors to codes. Every error
is one line on stderr, `artifactstore: error: <message>`; `-v` adds the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from artifactstore import cli_output as output
from artifactstore._version import __version__
from artifactstore.cli_output import Progress
from artifactstore.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_STORAGE_ROOT,
    ENV_PREFIX,
    Settings,
    configure_logging,
    load_settings,
    redact_url,
)
from artifactstore.errors import (
    ArtifactStoreError,
    BlobNotFoundError,
    IntegrityError,
)

if TYPE_CHECKING:
    from artifactstore.store import ArtifactStore

PROG = "artifactstore"
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    # First match wins, so subclasses come before their bases.
    (IntegrityError, EXIT_CHECK_FAILED),  # bytes read back differ from what was recorded
    (BlobNotFoundError, EXIT_CHECK_FAILED),  # a blob the registry names is gone
    (ArtifactStoreError, EXIT_BAD_INPUT),  # input, names, state, config, database, schema
    (OSError, EXIT_CHECK_FAILED),  # local files the CLI itself writes (pull, stdout)
)
"""Errors to exit codes; anything not listed is a bug and exits 1."""


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error raised by a command (see EXIT_CODES)."""
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_CHECK_FAILED


@dataclass(frozen=True, slots=True)
class CliState:
    """What the group callback hands every command: the Settings and the output mode."""

    settings: Settings
    as_json: bool


pass_state = click.make_pass_decorator(CliState)


def _fail(exc: BaseException, verbose: bool) -> NoReturn:
    if isinstance(exc, BrokenPipeError):
        # The reader went away (`| head`): stop quietly, and keep Python's final flush of
        # stdout from raising again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, ArtifactStoreError | OSError):
        message = f"unexpected {type(exc).__name__}: {message} (run with -v for details)"
    _say_error(redact_url(message))
    raise click.exceptions.Exit(exit_code_for(exc))


def _say_error(message: str) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    click.echo(f"{PROG}: error: {first_line}", err=True)


class _Group(click.Group):
    """A group that turns every error from a command into one stderr line and an exit code."""

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; map ArtifactStoreError and the rest through EXIT_CODES."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            _fail(exc, bool(ctx.params.get("verbose")))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "database_url",
    metavar="URL",
    help=f"Registry database URL [env {ENV_PREFIX}DATABASE_URL; default {DEFAULT_DATABASE_URL}].",
)
@click.option(
    "--root",
    "storage_root",
    metavar="DIR",
    help=f"Blob storage directory, the short form of --storage file://DIR "
    f"[env {ENV_PREFIX}STORAGE_LOCAL_ROOT; default ./{DEFAULT_STORAGE_ROOT}].",
)
@click.option(
    "--storage",
    "storage_url",
    metavar="URL",
    help=f"Where the blobs live, file:///abs/path [env {ENV_PREFIX}STORAGE_URL].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help=f"Show tracebacks on errors (log level: {ENV_PREFIX}LOG_LEVEL).",
)
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str | None,
    storage_root: str | None,
    storage_url: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Content-addressed, verifiable store for build outputs.

    Exit codes: 0 ok, 1 a check failed, 2 bad usage or input.

    \b
    Example:
      artifactstore push acme/app 1.4.2 dist/ && artifactstore pull acme/app 1.4.2 out/
    """
    if storage_root and storage_url:
        raise click.UsageError("give --root DIR or --storage URL, not both")
    settings = load_settings(os.environ, database_url, storage_root, storage_url)
    configure_logging(settings)
    ctx.obj = CliState(settings, as_json)


def _open_store(ctx: click.Context) -> ArtifactStore:
    """Open the store the settings describe; it is closed when the command ends."""
    from artifactstore.store import ArtifactStore

    state = ctx.find_object(CliState)
    assert state is not None  # the group callback always sets it
    return ctx.with_resource(ArtifactStore.from_settings(state.settings))


# -- version and operations ------------------------------------------------------------------


@cli.command()
@pass_state
def version(state: CliState) -> None:
    """Print the artifactstore version.

    \b
    Example:
      artifactstore version
    """
    output.version(state.as_json)


@cli.command()
@click.option("--fresh", is_flag=True, help="Drop every table first, then recreate them.")
@click.option("--yes", is_flag=True, help="Do not ask before --fresh drops the tables.")
@pass_state
def migrate(state: CliState, fresh: bool, yes: bool) -> None:
    """Upgrade the database schema to the revision this version needs.

    Works on a database that is behind, which every other command refuses. --fresh drops all
    tables (every package and event; blobs stay on disk) and recreates them: it asks first,
    and without a terminal to ask on it needs --yes.

    \b
    Example:
      artifactstore --db postgresql://ci@db.example/artifacts migrate
    """
    url = state.settings.redacted_database_url
    if fresh and not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("--fresh deletes every package and event; add --yes")
        if not click.confirm(f"Delete every package and event in {url}?", err=True):
            raise click.UsageError("not confirmed; nothing was changed")
    from artifactstore.migration import migrate_database

    before, after = migrate_database(state.settings, fresh)
    output.migrated(url, fresh, before, after, state.as_json)


@cli.command()
@pass_state
@click.pass_context
def health(ctx: click.Context, state: CliState) -> None:
    """Check the database and the blob storage; exit 1 if unhealthy.

    \b
    Example:
      artifactstore health || echo "store is unhealthy"
    """
    from artifactstore import health as checks

    try:
        report = checks.check(_open_store(ctx))
    except ArtifactStoreError as exc:
        report = checks.check_unopened(state.settings, exc)
    output.health(report, state.as_json)
    if not report.ok:
        ctx.exit(EXIT_CHECK_FAILED)


@cli.command()
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
    report = _open_store(ctx).replay(check=check, force=force)
    output.replay(report, check, state.as_json)
    if check and not report.identical:
        ctx.exit(EXIT_CHECK_FAILED)


@cli.command()
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
    output.checkpoint(_open_store(ctx).checkpoint(), state.as_json)


def _serve_environment(settings: Settings) -> dict[str, str]:
    environ = dict(os.environ)
    environ[f"{ENV_PREFIX}DATABASE_URL"] = settings.database_url
    environ[f"{ENV_PREFIX}STORAGE_URL"] = settings.storage_url
    environ[f"{ENV_PREFIX}LOG_LEVEL"] = settings.log_level
    return environ


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="Processes.")
@pass_state
def serve(state: CliState, host: str, port: int, workers: int) -> None:
    """Run the HTTP app (GET /health) under gunicorn.

    gunicorn replaces this process; the settings reach the app through the ARTIFACTSTORE_*
    environment variables.

    \b
    Example:
      artifactstore --db postgresql://as@db/artifacts serve --host 0.0.0.0 --port 8080
    """
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}"]
    argv += ["--workers", str(workers), "artifactstore.web:create_app()"]
    # exec, not a child: signals from a supervisor reach gunicorn's arbiter directly.
    os.execve(sys.executable, argv, _serve_environment(state.settings))


# -- packages ---------------------------------------------------------------------------------


def _parse_meta(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
        if key in metadata:
            raise click.BadParameter(f"key {key!r} is given twice", param_hint="--meta")
        metadata[key] = value
    return metadata


def _package_args(args: tuple[str, ...], rest: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """Split NAME VERSION (or NAME:VERSION, or NAME@blake3:<hex>) from the arguments after it.

    Returns the package as one text ('NAME:VERSION' or 'NAME@blake3:<hex>') and the rest.
    """
    from artifactstore.naming import check_name, check_version, is_package_spec

    wanted = " ".join(("NAME VERSION", *rest))
    if args and is_package_spec(args[0]):
        ref, remaining = args[0], list(args[1:])
    elif len(args) >= 2:
        ref, remaining = f"{check_name(args[0])}:{check_version(args[1])}", list(args[2:])
    else:
        raise click.UsageError(f"expected {wanted} (or NAME:VERSION, NAME@blake3:<hex>)")
    if len(remaining) != len(rest):
        raise click.UsageError(f"expected {wanted} (or NAME:VERSION, NAME@blake3:<hex>)")
    return ref, remaining


expect_digest_option = click.option(
    "--expect-digest",
    metavar="DIGEST",
    help="Fail (exit 1) unless the manifest digest is DIGEST (blake3:<hex>).",
)


@cli.command()
@click.argument("args", nargs=-1, metavar="NAME VERSION DIR")
@click.option(
    "--retention",
    "retention_class",
    default="standard",
    show_default=True,
    metavar="CLASS",
    help="ephemeral, ci, standard, release or legal-hold.",
)
@click.option(
    "--meta",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_meta,
    help="Metadata to record; repeatable. Values are kept as text.",
)
@pass_state
@click.pass_context
def push(
    ctx: click.Context,
    state: CliState,
    args: tuple[str, ...],
    retention_class: str,
    metadata: dict[str, str],
) -> None:
    """Store a directory as a package, atomically, and print its manifest digest.

    Every file under DIR becomes package NAME VERSION (or NAME:VERSION): the blobs are stored
    first, then the whole version is published in one step, so no one ever sees part of it.
    Symlinks and special files are refused. Pushing the same files, retention class and
    metadata again succeeds with the same digest and changes nothing; anything different
    exits 2 naming the first difference, and so does a version open for assembly. --json
    adds whether the version was created and its finalize event's sequence and chain digest.

    \b
    Example:
      artifactstore push acme/app 1.4.2 dist/ --retention ci --meta git_sha=3f2a9c1
    """
    from artifactstore import tree
    from artifactstore.naming import parse_package_spec

    ref, (directory,) = _package_args(args, ("DIR",))
    spec = parse_package_spec(ref)
    if spec.version is None:
        raise click.UsageError("push needs NAME VERSION (or NAME:VERSION), not a digest")
    store = _open_store(ctx)
    # Totals only feed the progress line, so the tree is walked twice only on a terminal.
    found = tree.scan(directory) if Progress.is_wanted() else []
    with Progress("push", len(found), sum(f.size for f in found)) as progress:
        result = store.push(
            spec.name, spec.version, directory, retention_class, metadata, progress.advance
        )
    output.pushed(result, state.as_json)


@cli.command()
@click.argument("args", nargs=-1, metavar="NAME VERSION DEST")
@click.option("--force", is_flag=True, help="Write into a non-empty DEST, replacing files.")
@expect_digest_option
@pass_state
@click.pass_context
def pull(
    ctx: click.Context,
    state: CliState,
    args: tuple[str, ...],
    force: bool,
    expect_digest: str | None,
) -> None:
    """Write the files of a finalized package into DEST, each one verified.

    DEST must be empty or missing unless --force is given. The file list comes from the
    manifest the event log fixed; each file is checked against its content address (BLAKE3)
    and size before it is renamed into place, with its executable bit; a mismatch exits 1 and
    leaves no partial file. An open package exits 2. (verify re-checks both recorded digests,
    BLAKE3 and SHA-256.)

    \b
    Example:
      artifactstore pull acme/app:1.4.2 out/ --expect-digest blake3:9f2c...
    """
    from artifactstore.pull import is_empty_directory

    ref, (dest_text,) = _package_args(args, ("DEST",))
    dest = Path(dest_text)
    store = _open_store(ctx)
    package = store.package(ref)
    if not force and not is_empty_directory(dest):
        raise click.UsageError(f"{str(dest)!r} is not empty; use --force to write into it")
    listed = store.finalized_files(ref, expect_digest) if Progress.is_wanted() else []
    with Progress("pull", len(listed), sum(f.size for f in listed)) as progress:
        files = store.pull(ref, dest, progress.advance, expect_digest)
    output.pulled(package, files, dest, state.as_json)


def _parse_checkpoints(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[int, str]:
    from artifactstore.errors import InvalidAddressError
    from artifactstore.identity import Digest

    checkpoints: dict[int, str] = {}
    for item in values:
        sequence, sep, digest = item.partition(":")
        try:
            if not sep or not sequence.isdigit():
                raise ValueError
            checkpoints[int(sequence)] = Digest.parse(digest).hex
        except (ValueError, InvalidAddressError):
            raise click.BadParameter(
                f"{item!r} is not SEQ:blake3:<hex>", param_hint="--checkpoint"
            ) from None
    return checkpoints


@cli.command()
@click.argument("args", nargs=-1, metavar="[NAME VERSION]")
@click.option("--all", "check_all", is_flag=True, help="Every package, the log and the views.")
@expect_digest_option
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    metavar="SEQ:DIGEST",
    callback=_parse_checkpoints,
    help="With --all: fail unless event SEQ still has chain digest DIGEST; repeatable.",
)
@pass_state
@click.pass_context
def verify(
    ctx: click.Context,
    state: CliState,
    args: tuple[str, ...],
    check_all: bool,
    expect_digest: str | None,
    checkpoints: dict[int, str],
) -> None:
    """Re-hash stored blobs and check the log; exit 1 on any problem, listing each.

    With NAME VERSION: that package's manifest (from the event log) and every blob it names;
    an open package fails ("not finalized"). With no arguments (or --all): every package, the
    log (gapless, hash-chained, no change after a finalize except retention, and each
    --checkpoint still there), and the views against a replay of the log. An open package
    under assembly is no problem for --all.

    \b
    Example:
      artifactstore verify acme/app 1.4.2
      artifactstore verify --all --checkpoint "$(cat checkpoint.txt)"
    """
    if check_all and args:
        raise click.UsageError("give NAME VERSION or --all, not both")
    if args and checkpoints:
        raise click.UsageError("--checkpoint goes with --all")
    if not args and expect_digest:
        raise click.UsageError("--expect-digest goes with NAME VERSION")
    store = _open_store(ctx)
    if args:
        ref, _ = _package_args(args)
        files = store.list_files(ref) if Progress.is_wanted() else []
        with Progress("verify", len(files), sum(f.size for f in files)) as progress:
            report = store.verify_package(ref, progress.advance, expect_digest)
    else:
        files = (
            [f for p in store.list_packages() for f in store.list_files(p)]
            if Progress.is_wanted()
            else []
        )
        with Progress("verify", len(files), sum(f.size for f in files)) as progress:
            report = store.verify_all(progress.advance, checkpoints)
    output.verified(report, state.as_json)
    if not report.ok:
        ctx.exit(EXIT_CHECK_FAILED)


# -- looking around ---------------------------------------------------------------------------


@cli.command(name="ls")
@click.argument("name", required=False)
@pass_state
@click.pass_context
def list_packages(ctx: click.Context, state: CliState, name: str | None) -> None:
    """List packages, sorted by name and version.

    Every package, or every version of NAME. Columns: name:version, state, retention class,
    manifest digest.

    \b
    Example:
      artifactstore ls acme/app
    """
    output.packages(_open_store(ctx).list_packages(name), state.as_json)


@cli.command()
@click.argument("args", nargs=-1, metavar="NAME VERSION")
@click.option(
    "--format",
    "manifest_format",
    type=click.Choice(["jcs", "cbor"]),
    default="jcs",
    show_default=True,
    help="jcs: canonical JSON (RFC 8785); cbor: the raw canonical CBOR that is digested.",
)
@expect_digest_option
@click.pass_context
def show(
    ctx: click.Context, args: tuple[str, ...], manifest_format: str, expect_digest: str | None
) -> None:
    """Print the manifest of a finalized package.

    The manifest of package NAME VERSION as the event log fixed it, as JCS or raw CBOR;
    --json changes nothing here.

    \b
    Example:
      artifactstore show acme/app 1.4.2 --format cbor | b3sum
    """
    ref, _ = _package_args(args)
    data = _open_store(ctx).get_manifest_bytes(ref, manifest_format, expect_digest)
    # JSON gets a newline like any text output; CBOR goes out byte-exact for digesting.
    sys.stdout.buffer.write(data + b"\n" if manifest_format == "jcs" else data)
    sys.stdout.buffer.flush()


@cli.command()
@click.argument("args", nargs=-1, metavar="NAME VERSION PATH")
@expect_digest_option
@click.pass_context
def cat(ctx: click.Context, args: tuple[str, ...], expect_digest: str | None) -> None:
    """Write one file of a finalized package to stdout, byte for byte.

    PATH is the file's path inside package NAME VERSION, as its manifest lists it. The bytes
    stream as they are read; if they do not match the recorded digest, the error comes at the
    end and the exit code is 1.

    \b
    Example:
      artifactstore cat acme/app 1.4.2 bin/app > app
    """
    ref, (path,) = _package_args(args, ("PATH",))
    out = sys.stdout.buffer
    with _open_store(ctx).get_file(ref, path, expect_digest) as reader:
        while chunk := reader.read(1 << 20):
            out.write(chunk)
    out.flush()


@cli.command()
@click.option("--since", default=0, show_default=True, type=click.IntRange(0), metavar="N")
@click.option("--follow", is_flag=True, help="Keep waiting for new events.")
@click.option("--timeout", type=click.FloatRange(0), metavar="S", help="Stop following after S.")
@pass_state
@click.pass_context
def events(
    ctx: click.Context, state: CliState, since: int, follow: bool, timeout: float | None
) -> None:
    """Print the events of the log after sequence N, oldest first.

    Text columns: sequence, time, type, package id, actor; --json prints one JSON object per
    line. --follow waits for new events (until --timeout seconds, if given).

    \b
    Example:
      artifactstore events --since 120 --follow --timeout 60
    """
    for event in _open_store(ctx).tail_events(since, follow, timeout):
        output.event(event, state.as_json)


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point: run the CLI and exit with its code."""
    try:
        result = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        _say_error(exc.format_message() + hint)
        sys.exit(exc.exit_code)
    except click.Abort:
        _say_error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(result if isinstance(result, int) else EXIT_OK)
