"""The CLI's light start-up, its help texts and its one table from errors to exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from artifactstore import errors
from artifactstore.cli import EXIT_CODES, cli, exit_code_for

HEAVY = ("sqlalchemy", "flask", "alembic", "werkzeug", "psycopg")


def test_version_imports_no_database_or_web_modules() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "artifactstore", "version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith("artifactstore ")
    # -X importtime lines end with the module name after the last '|'.
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "artifactstore.cli" in imported
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []


@pytest.mark.parametrize(
    "command", [["push", "acme/app", "1", "."], ["pull", "acme/app", "1", "out"]]
)
def test_a_server_command_imports_no_database_or_web_modules(
    command: list[str], tmp_path: Path
) -> None:
    # Nothing listens on port 1: the command gets as far as its first request, then exits 2.
    server = "http://127.0.0.1:1"
    (tmp_path / "a.txt").write_text("a file to hash\n")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "artifactstore", "--server", server, *command],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "ARTIFACTSTORE_TOKEN": "as_not_a_real_one"},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "artifactstore.remote.transport" in imported
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_ending_with_an_example(name: str) -> None:
    command = cli.commands[name]
    text = command.help or ""
    # The first line is what `artifactstore --help` lists.
    assert command.get_short_help_str(limit=80).strip(), name
    assert "Example:" in text and text.rstrip().splitlines()[-1].strip().startswith("artifactstore")
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help or param.show_default, f"{name} {param.opts}"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidNameError("x"), 2),
        (errors.InvalidPathError("x"), 2),
        (errors.InvalidRetentionClassError("x"), 2),
        (errors.InvalidMetadataError("x"), 2),
        (errors.PackageNotFoundError("x"), 2),
        (errors.AlreadyExistsError("x"), 2),
        (errors.ConflictError("x"), 2),
        (errors.ConfigError("x"), 2),
        (errors.DatabaseError("x"), 2),
        (errors.SchemaVersionError("x"), 2),
        (errors.StorageError("x"), 2),
        (errors.IntegrityError("x"), 1),
        (errors.BlobNotFoundError("x"), 1),
        (PermissionError(13, "denied"), 1),
        (RuntimeError("bug"), 1),
    ],
)
def test_exit_codes_come_from_one_table(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code


def test_the_table_lists_subclasses_before_their_bases() -> None:
    kinds = [kind for kind, _ in EXIT_CODES]
    for index, kind in enumerate(kinds):
        assert not any(issubclass(kind, earlier) for earlier in kinds[:index]), kind
