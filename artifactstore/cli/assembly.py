"""The commands that assemble a package from several jobs: create, add, finalize, abandon.

A matrix build opens a version once (`create`), each job adds its files (`add`), and the last
step closes it (`finalize`, or `abandon` for a failed build). The commands call only the
store's assembly methods, so they work the same against a remote store.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

import click

from artifactstore.cli import output
from artifactstore.cli.completion import package_argument
from artifactstore.cli.context import (
    CliState,
    meta_option,
    open_store,
    package_args,
    pass_state,
    retention_option,
)


def _name_version(args: tuple[str, ...], rest: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """'NAME:VERSION' from NAME VERSION (or NAME:VERSION), and the arguments after it.

    A NAME@blake3:<hex> pin is refused: it names a finalized package, never an open one.
    """
    ref, remaining = package_args(args, rest)
    if "@" in ref:
        raise click.UsageError("expected NAME VERSION (or NAME:VERSION), not a digest")
    return ref, remaining


@click.command()
@package_argument("NAME VERSION")
@retention_option
@meta_option
@pass_state
@click.pass_context
def create(
    ctx: click.Context,
    state: CliState,
    args: tuple[str, ...],
    retention_class: str,
    metadata: dict[str, str],
) -> None:
    """Open package NAME VERSION for assembly by several jobs.

    Jobs then 'add' files to it, and one 'finalize's it (or 'abandon's it). A version that
    exists already, open or not, exits 2.

    \b
    Example:
      artifactstore create acme/app 1.4.2 --retention ci --meta git_sha=3f2a9c1
    """
    ref, _ = _name_version(args)
    name, _, version = ref.partition(":")
    store = open_store(ctx, create=True)
    package = store.create_package(name, version, retention_class, metadata)
    if state.informs:
        output.created(package, state.as_json)


@click.command()
@package_argument("NAME VERSION PATH", files=True)
@click.option(
    "--prefix",
    default="",
    metavar="P",
    help="The directory inside the package to add under (default: its top).",
)
@pass_state
@click.pass_context
def add(ctx: click.Context, state: CliState, args: tuple[str, ...], prefix: str) -> None:
    """Add a file, or every file under a directory, to open package NAME VERSION.

    A file goes in as P/<its name>; a directory's files as P/<their path under it> (without
    --prefix, at the top of the package). Symlinks and special files are refused. Adding a
    path the package has already with the same bytes and executable bit changes nothing and
    succeeds, so a retried job passes; with other content it exits 2 naming the path. Several
    jobs may add at once.

    \b
    Example:
      artifactstore add acme/app 1.4.2 build/linux-amd64/ --prefix linux-amd64
    """
    ref, (path_text,) = _name_version(args, ("PATH",))
    source = Path(path_text)
    if source.is_symlink() or (source.exists() and not (source.is_dir() or source.is_file())):
        raise click.UsageError(f"{path_text!r} is not a regular file or a directory")
    store = open_store(ctx)
    if source.is_dir():
        files = store.ingest_directory(ref, source, prefix=prefix)
    else:
        files = [store.ingest_file(ref, posixpath.join(prefix, source.name), source)]
    if state.informs:
        output.added(ref, files, state.as_json)


@click.command()
@package_argument("NAME VERSION")
@pass_state
@click.pass_context
def finalize(ctx: click.Context, state: CliState, args: tuple[str, ...]) -> None:
    """Make open package NAME VERSION immutable and print its manifest digest.

    Finalizing a finalized package again prints the same digest and changes nothing. --json
    prints what push --json does: created (false when it was finalized already), and the
    finalize event's sequence and chain digest.

    \b
    Example:
      artifactstore finalize acme/app 1.4.2
    """
    ref, _ = _name_version(args)
    output.finalized(open_store(ctx).finalize(ref), state.as_json)


@click.command()
@package_argument("NAME VERSION")
@pass_state
@click.pass_context
def abandon(ctx: click.Context, state: CliState, args: tuple[str, ...]) -> None:
    """Drop open package NAME VERSION, for example one a failed build left behind.

    Its files are dropped with it (their blobs stay stored). A finalized package, or one
    abandoned already, exits 2.

    \b
    Example:
      artifactstore abandon acme/app 1.4.2
    """
    ref, _ = _name_version(args)
    open_store(ctx).abandon_package(ref)
    if state.informs:
        output.abandoned(ref, state.as_json)


COMMANDS = (create, add, finalize, abandon)
