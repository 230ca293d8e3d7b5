"""The commands on packages: push, pull, verify, ls, show, cat, events."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import click

from artifactstore.cli import output, terminal
from artifactstore.cli.completion import package_argument
from artifactstore.cli.context import (
    CliState,
    expect_digest_option,
    is_empty_directory,
    meta_option,
    open_local_store,
    open_store,
    package_args,
    parse_checkpoints,
    pass_state,
    retention_option,
)
from artifactstore.cli.failures import EXIT_CHECK_FAILED
from artifactstore.cli.terminal import Progress


@click.command()
@package_argument("NAME VERSION DIR", files=True)
@retention_option
@meta_option
@click.option("--allow-empty", is_flag=True, help="Push a DIR that holds no file.")
@pass_state
@click.pass_context
def push(
    ctx: click.Context,
    state: CliState,
    args: tuple[str, ...],
    retention_class: str,
    metadata: dict[str, str],
    allow_empty: bool,
) -> None:
    """Store a directory as a package, atomically, and print its manifest digest.

    Every file under DIR becomes package NAME VERSION (or NAME:VERSION): the blobs are stored
    first, then the whole version is published in one step, so no one ever sees part of it.
    Symlinks, special files, unreadable files and paths a package cannot hold (clashing
    names, control characters, names over 255 bytes) are refused before anything is stored; a
    file that changes while it is read exits 2 with nothing published. The store's own
    database and blob folder are left out when DIR holds them. A DIR with no file exits 2
    unless --allow-empty is given. Pushing the same files, retention class and
    metadata again succeeds with the same digest and changes nothing; anything different
    exits 2 naming the first difference, and so does a version open for assembly. --json
    adds whether the version was created and its finalize event's sequence and chain digest.

    \b
    Example:
      artifactstore push acme/app 1.4.2 dist/ --retention ci --meta git_sha=3f2a9c1
    """
    from artifactstore import parse_package_spec

    ref, (directory,) = package_args(args, ("DIR",))
    spec = parse_package_spec(ref)
    if spec.version is None:
        raise click.UsageError("push needs NAME VERSION (or NAME:VERSION), not a digest")
    store = open_store(ctx, create=True)
    with Progress("push", quiet=state.quiet) as progress:
        result = store.push(
            spec.name,
            spec.version,
            directory,
            retention_class,
            metadata,
            progress.advance,
            on_scanned=progress.start,
            allow_empty=allow_empty,
        )
    output.pushed(result, state.as_json)


@click.command()
@package_argument("NAME VERSION DEST", files=True)
@click.option("--force", is_flag=True, help="Write into a non-empty DEST, replacing files.")
@expect_digest_option
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Only the files whose package path matches GLOB ('*' stays within a directory, "
    "'**' spans any); repeatable.",
)
@pass_state
@click.pass_context
def pull(
    ctx: click.Context,
    state: CliState,
    args: tuple[str, ...],
    force: bool,
    expect_digest: str | None,
    include: tuple[str, ...],
) -> None:
    """Write the files of a finalized package into DEST, each one verified.

    DEST must be empty or missing unless --force is given. The file list comes from the
    manifest the event log fixed; each file is checked against its content address (BLAKE3)
    and size before it is renamed into place, with its executable bit; a mismatch exits 1 and
    leaves no partial file. An open package exits 2. (verify re-checks both recorded digests,
    BLAKE3 and SHA-256.) Nothing is written outside DEST: a symlink where the package needs a
    directory exits 2. Temp files a killed pull left in DEST are removed.

    --include GLOB writes only the files whose whole package path matches a GLOB: '*' and
    '?' do not cross '/', a '**' component spans any number of directories ('**/*.so',
    'docs/**'), '[...]' is a character class. A GLOB that matches no file exits 2 and
    writes nothing.

    \b
    Example:
      artifactstore pull acme/app:1.4.2 out/ --expect-digest blake3:9f2c...
      artifactstore pull acme/app 1.4.2 out/ --include 'bin/*' --include '**/*.so'
    """
    from artifactstore import select_files

    ref, (dest_text,) = package_args(args, ("DEST",))
    dest = Path(dest_text)
    store = open_store(ctx)
    package = store.package(ref)
    if not force and not is_empty_directory(dest):
        raise click.UsageError(f"{str(dest)!r} is not empty; use --force to write into it")
    listed = store.finalized_files(ref, expect_digest) if Progress.is_wanted(state.quiet) else []
    listed = select_files(listed, include, ref) if listed else []  # the bar counts what is pulled
    with Progress("pull", len(listed), sum(f.size for f in listed), quiet=state.quiet) as progress:
        files = store.pull(ref, dest, progress.advance, expect_digest, include)
    if state.informs:
        output.pulled(package, files, dest, state.as_json)


@click.command()
@package_argument("[NAME VERSION]")
@click.option("--all", "check_all", is_flag=True, help="Every package, the log and the views.")
@expect_digest_option
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    metavar="SEQ:DIGEST",
    callback=parse_checkpoints,
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
    if args:
        ref, _ = package_args(args)
        store = open_store(ctx)
        files = store.list_files(ref) if Progress.is_wanted(state.quiet) else []
        with Progress(
            "verify", len(files), sum(f.size for f in files), quiet=state.quiet
        ) as progress:
            report = store.verify_package(ref, progress.advance, expect_digest)
    else:
        store = open_local_store(ctx, what=f"{ctx.command_path} --all")
        files = (
            [f for p in store.list_packages() for f in store.list_files(p)]
            if Progress.is_wanted(state.quiet)
            else []
        )
        with Progress(
            "verify", len(files), sum(f.size for f in files), quiet=state.quiet
        ) as progress:
            report = store.verify_all(progress.advance, checkpoints)
    output.verified(report, state.as_json, state.informs)
    if not report.ok:
        ctx.exit(EXIT_CHECK_FAILED)


# -- looking around ---------------------------------------------------------------------------


@click.command(name="ls")
@package_argument("[NAME [VERSION]]")
@meta_option
@click.option("--latest", is_flag=True, help="Only the newest finalized version of NAME.")
@click.option(
    "--all", "include_ended", is_flag=True, help="Include abandoned, expired and deleted ones."
)
@pass_state
@click.pass_context
def list_packages(
    ctx: click.Context,
    state: CliState,
    args: tuple[str, ...],
    metadata: dict[str, str],
    latest: bool,
    include_ended: bool,
) -> None:
    """List packages, newest version first; or the files of one package.

    Every package, or every version of NAME, by name and then newest first: versions compare
    as versions (runs of digits as numbers, other text as text: 1.2.10 after 1.9.0, 1.10.0
    after both), then by finalize time. Columns: name:version, state, retention class, size,
    finalize time ('-' while open), manifest digest. --meta KEY=VALUE keeps the versions whose
    metadata has that value (repeatable: all must match). --latest prints only the newest
    finalized match (exit 2 "no match" if there is none); with --json, that package's object.
    --all lists ended versions too (abandoned, expired, deleted: they keep their names). With
    NAME VERSION (or NAME:VERSION, NAME@blake3:<hex>): the package's files,
    as path, size, executable ('x' or '-'), content address.

    \b
    Example:
      artifactstore ls acme/app --meta branch=main --latest
      artifactstore ls acme/app 1.4.2
    """
    from artifactstore import PackageNotFoundError, check_name, is_package_spec

    if len(args) > 2:
        raise click.UsageError("expected [NAME [VERSION]] (or NAME:VERSION, NAME@blake3:<hex>)")
    if len(args) == 2 or (args and is_package_spec(args[0])):
        if metadata or latest:
            raise click.UsageError("--meta and --latest list versions; give NAME alone")
        ref, _ = package_args(args)
        store = open_store(ctx)
        output.files(store.list_files(ref), state.as_json)
        return
    name = check_name(args[0]) if args else None
    if latest and name is None:
        raise click.UsageError("--latest needs NAME")
    listed = open_store(ctx).list_packages(name, include_ended)
    found = [p for p in listed if _matches(dict(p.metadata), metadata)]
    if not latest:
        output.packages(found, state.as_json)
        return
    newest = next((p for p in found if p.is_finalized), None)
    if newest is None:
        wanted = "".join(f" {k}={v}" for k, v in metadata.items())
        raise PackageNotFoundError(f"no match: no finalized version of {name}" + wanted)
    output.latest(newest, state.as_json)


def _matches(metadata: Mapping[str, object], wanted: Mapping[str, str]) -> bool:
    """Whether metadata holds every KEY=VALUE of wanted (a non-text value as its JSON)."""
    for key, value in wanted.items():
        if key not in metadata:
            return False
        found = metadata[key]
        if (found if isinstance(found, str) else output.json_text(found)) != value:
            return False
    return True


@click.command()
@package_argument("NAME VERSION")
@click.option(
    "--format",
    "manifest_format",
    type=click.Choice(["jcs", "cbor"]),
    default="jcs",
    show_default=True,
    help="jcs: canonical JSON (RFC 8785); cbor: the raw canonical CBOR that is digested.",
)
@expect_digest_option
@click.option("--force", is_flag=True, help="Write CBOR even when stdout is a terminal.")
@click.pass_context
def show(
    ctx: click.Context,
    args: tuple[str, ...],
    manifest_format: str,
    expect_digest: str | None,
    force: bool,
) -> None:
    """Print the manifest of a finalized package, or what an open one holds so far.

    The manifest of package NAME VERSION as the event log fixed it, as JCS or raw CBOR;
    --json changes nothing here. A package open for assembly has no manifest yet: show
    prints it as JSON with "state": "open" and its files so far (as JCS only, and not with
    --expect-digest, which exit 2 for it). CBOR is binary: to a terminal it is refused (exit
    2) unless --force is given; redirect it or pipe it.

    \b
    Example:
      artifactstore show acme/app 1.4.2 --format cbor | b3sum
    """
    ref, _ = package_args(args)
    if manifest_format == "cbor" and not force:
        terminal.refuse_binary_on_terminal("the CBOR manifest")
    store = open_store(ctx)
    if "@" not in ref and manifest_format == "jcs" and expect_digest is None:
        package = store.package(ref)
        if package.state == "open":
            output.open_package(package, store.list_files(ref))
            return
    data = store.get_manifest_bytes(ref, manifest_format, expect_digest)
    # JSON gets a newline like any text output; CBOR goes out byte-exact for digesting.
    sys.stdout.buffer.write(data + b"\n" if manifest_format == "jcs" else data)
    sys.stdout.buffer.flush()


@click.command()
@package_argument("NAME VERSION PATH")
@expect_digest_option
@click.option("--force", is_flag=True, help="Write binary bytes even to a terminal.")
@click.pass_context
def cat(ctx: click.Context, args: tuple[str, ...], expect_digest: str | None, force: bool) -> None:
    """Write one file of a finalized package to stdout, byte for byte.

    PATH is the file's path inside package NAME VERSION, as its manifest lists it. The bytes
    stream as they are read; if they do not match the recorded digest, the error comes at the
    end and the exit code is 1. To a terminal, a file whose first 8 KiB hold a NUL byte or
    are not UTF-8 is refused (exit 2, nothing written) unless --force is given.

    \b
    Example:
      artifactstore cat acme/app 1.4.2 bin/app > app
    """
    ref, (path,) = package_args(args, ("PATH",))
    out = sys.stdout.buffer
    with open_store(ctx).get_file(ref, path, expect_digest) as reader:
        chunk = reader.read(1 << 20)
        if not force and terminal.is_binary(chunk[: terminal.SNIFF_BYTES]):
            terminal.refuse_binary_on_terminal(f"{path!r}, a binary file,")
        while chunk:
            out.write(chunk)
            chunk = reader.read(1 << 20)
    out.flush()


@click.command()
@click.option("--since", default=0, show_default=True, type=click.IntRange(0), metavar="N")
@click.option("--follow", is_flag=True, help="Keep waiting for new events.")
@click.option(
    "--timeout", type=click.FloatRange(0), metavar="S", help="With --follow: stop after S."
)
@pass_state
@click.pass_context
def events(
    ctx: click.Context, state: CliState, since: int, follow: bool, timeout: float | None
) -> None:
    """Print the events of the log after sequence N, oldest first.

    Text columns: sequence, time, type, package (name:version, '-' for none), actor; --json
    prints one JSON object per line, with the package id. --follow waits for new events
    (until --timeout seconds, if given; --timeout without --follow exits 2).

    \b
    Example:
      artifactstore events --since 120 --follow --timeout 60
    """
    if timeout is not None and not follow:
        raise click.UsageError("--timeout goes with --follow")
    store = open_store(ctx)
    names = output.PackageNames(store)
    for event in store.tail_events(since, follow, timeout):
        label = None if state.as_json else names.label(event.package_id)
        output.event(event, label, state.as_json)


COMMANDS = (push, pull, verify, list_packages, show, cat, events)
