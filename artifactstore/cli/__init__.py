"""The `artifactstore` command line: parse, call the store, render.

Settings are read once, in the group callback (`--db`, `--root` or `--storage`, else
ARTIFACTSTORE_* variables, else `./.artifactstore/`), and held in `ctx.obj`; commands open the
store only when they need it, and import the heavy modules (SQLAlchemy, alembic) inside the
command, so `version` and `--help` start fast. The commands live in `operations`,
`packages`, `comparing`, `assembly`, `tokens` and `completion`, what they print in `output`,
how they fail in `failures`. Like the web app, the command line uses only the public library surface
(`artifactstore.__all__`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

import click

from artifactstore import (
    DEFAULT_DATABASE_URL,
    DEFAULT_STORAGE_ROOT,
    ENV_PREFIX,
    __version__,
    configure_logging,
    load_settings,
)
from artifactstore.cli import (
    assembly,
    comparing,
    completion,
    oci,
    operations,
    packages,
    retention,
    tokens,
)
from artifactstore.cli.context import ACTOR_ENV, TOKEN_ENV, CliState, actor_of
from artifactstore.cli.failures import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    PROG,
    Group,
    exit_code_for,
    say_error,
    wants_json,
)

__all__ = ["EXIT_CODES", "cli", "exit_code_for", "main"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    help="Where the blobs live: file:///abs/path, or s3://BUCKET/PREFIX with optional "
    f"?endpoint_url=URL&region=NAME (AWS credentials from the standard chain) "
    f"[env {ENV_PREFIX}STORAGE_URL].",
)
@click.option(
    "--server",
    metavar="URL",
    envvar=f"{ENV_PREFIX}SERVER",
    help=f"Work on the artifactstore server at URL instead of a local store "
    f"[env {ENV_PREFIX}SERVER].",
)
@click.option(
    "--token-file",
    metavar="PATH",
    help=f"File holding the server token [else env {TOKEN_ENV}].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no informational lines.")
@click.option(
    "--actor",
    metavar="NAME",
    help=f"Who the events of a local store name [env {ACTOR_ENV}; in GitHub Actions or "
    "GitLab CI the job; else user@host]. With --server the server names the token.",
)
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
    server: str | None,
    token_file: str | None,
    as_json: bool,
    quiet: bool,
    actor: str | None,
    verbose: bool,
) -> None:
    """Content-addressed, verifiable store for build outputs.

    Exit codes: 0 ok, 1 a check failed, 2 bad usage or input.

    With --server the package commands (push, pull, verify NAME VERSION, ls, show, cat,
    diff, events, create, add, finalize, abandon) talk to a running server (`artifactstore
    serve`), with the same output.

    \b
    Example:
      artifactstore push acme/app 1.4.2 dist/ && artifactstore pull acme/app 1.4.2 out/
      artifactstore --server https://artifacts.example pull acme/app@blake3:9f2c... out/
    """
    if storage_root and storage_url:
        raise click.UsageError("give --root DIR or --storage URL, not both")
    if server and (database_url or storage_root or storage_url):
        raise click.UsageError("--server works on a server; --db, --root and --storage are local")
    if server and actor is not None:
        raise click.UsageError("with --server the server records the token's name as actor")
    settings = load_settings(os.environ, database_url, storage_root, storage_url)
    configure_logging(settings)
    chosen = None if server else actor_of(actor, os.environ)
    ctx.obj = CliState(settings, as_json, server or None, token_file, quiet, chosen)


for command in (
    *operations.COMMANDS,
    *packages.COMMANDS,
    *oci.COMMANDS,
    *comparing.COMMANDS,
    *assembly.COMMANDS,
    *retention.COMMANDS,
    *tokens.COMMANDS,
    completion.completion,
):
    cli.add_command(command)


class _Terminated(BaseException):
    """SIGTERM, raised where the process is, like KeyboardInterrupt for SIGINT.

    A BaseException, so no `except Exception` swallows it while every `finally` and
    `except BaseException` cleanup runs (pull removes its temp files).
    """


def _terminate(_signum: int, _frame: FrameType | None) -> NoReturn:
    # A second SIGTERM must not cut the cleanup of the first short; SIGKILL still ends it.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Terminated


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point: run the CLI and exit with its code (143 on SIGTERM)."""
    # Signal handlers can only be set in the main thread; one the caller set (or an inherited
    # SIG_IGN) is left alone.
    handle_term = threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    )
    if handle_term:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        _run(argv)
    except _Terminated:
        say_error("terminated", "terminated", wants_json(None, _argv(argv)))
        sys.exit(EXIT_TERMINATED)
    finally:
        if handle_term:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _argv(argv: list[str] | None) -> list[str]:
    return sys.argv[1:] if argv is None else argv


def _run(argv: list[str] | None) -> NoReturn:
    try:
        result = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        as_json = wants_json(getattr(exc, "ctx", None), _argv(argv))
        say_error(exc.format_message() + hint, "usage_error", as_json)
        sys.exit(exc.exit_code)
    except click.Abort:
        say_error("interrupted", "interrupted", wants_json(None, _argv(argv)))
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(result if isinstance(result, int) else EXIT_OK)
