"""How a command fails: exit codes, and every error as one line on stderr.

Exit codes (SPEC "CLI"): 0 ok; 1 a check failed (verify, health, replay --check, integrity of
bytes read back); 2 bad usage or input, including a database or storage that cannot be used as
configured; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM). `EXIT_CODES` is the one
table from errors to codes. Every error is one line on stderr,
`artifactstore: error: <message>`, or under `--json` one JSON object,
`{"error": {"code": ..., "message": ...}}`, the code an `ArtifactStoreError` travels as over
HTTP (`error_code`) or one of `usage_error`, `os_error`, `unexpected_error`, `interrupted`,
`terminated`; `-v` adds the traceback. Both pass through `redact_url`, so neither prints a
password.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import click

from artifactstore import (
    ArtifactStoreError,
    BlobNotFoundError,
    IntegrityError,
    error_code,
    redact_url,
)
from artifactstore.cli.context import CliState
from artifactstore.cli.output import json_text

PROG = "artifactstore"
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports it

EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    # First match wins, so subclasses come before their bases.
    (IntegrityError, EXIT_CHECK_FAILED),  # bytes read back differ from what was recorded
    (BlobNotFoundError, EXIT_CHECK_FAILED),  # a blob the registry names is gone
    (ArtifactStoreError, EXIT_BAD_INPUT),  # input, names, state, config, database, schema
    (OSError, EXIT_CHECK_FAILED),  # local files the CLI itself writes (stdout)
)
"""Errors to exit codes; anything not listed is a bug and exits 1."""


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error raised by a command (see EXIT_CODES)."""
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_CHECK_FAILED


def error_code_for(exc: BaseException) -> str:
    """The code of an error under --json: the library's own code, else what kind it is."""
    if isinstance(exc, ArtifactStoreError):
        return error_code(type(exc))
    if isinstance(exc, click.UsageError):
        return "usage_error"
    if isinstance(exc, OSError):
        return "os_error"
    return "unexpected_error"


def wants_json(ctx: click.Context | None, argv: Sequence[str] = ()) -> bool:
    """Whether errors go out as JSON: --json as the group read it, else as argv holds it.

    argv is the fallback for errors before or outside a command (a bad group option, Ctrl-C).
    """
    if ctx is not None:
        state = ctx.find_object(CliState)
        if state is not None:
            return state.as_json
        if "as_json" in ctx.find_root().params:  # parsed, but the group callback failed
            return bool(ctx.find_root().params["as_json"])
    return "--json" in argv


def fail(exc: BaseException, verbose: bool, as_json: bool = False) -> NoReturn:
    if isinstance(exc, BrokenPipeError):
        # The reader went away (`| head`): stop quietly, and keep Python's final flush of
        # stdout from raising again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)
    if verbose:
        # Chained driver errors may quote the database URL: secrets are hidden here too.
        sys.stderr.write(redact_url("".join(traceback.format_exception(exc))))
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, ArtifactStoreError | OSError):
        message = f"unexpected {type(exc).__name__}: {message} (run with -v for details)"
    say_error(redact_url(message), error_code_for(exc), as_json)
    raise click.exceptions.Exit(exit_code_for(exc))


def say_error(message: str, code: str = "error", as_json: bool = False) -> None:
    """One line on stderr: 'artifactstore: error: ...', or with as_json one JSON object."""
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    if as_json:
        click.echo(json_text({"error": {"code": code, "message": first_line}}), err=True)
    else:
        click.echo(f"{PROG}: error: {first_line}", err=True)


class Group(click.Group):
    """A group that turns every error from a command into one stderr line and an exit code."""

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; map ArtifactStoreError and the rest through EXIT_CODES."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            fail(exc, bool(ctx.params.get("verbose")), wants_json(ctx))
