"""What every command shares: the settings and output mode, the store, and argument parsing.

Library names are imported inside the functions that use them, so `version` and `--help`
start without SQLAlchemy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from artifactstore import ArtifactStore, RemoteStore, Settings

    Store = ArtifactStore | RemoteStore
    """What the package commands work on: a local store, or a server (--server)."""

TOKEN_ENV = "ARTIFACTSTORE_TOKEN"
ACTOR_ENV = "ARTIFACTSTORE_ACTOR"


@dataclass(frozen=True, slots=True)
class CliState:
    """What the group callback hands every command: the Settings and the output mode, and
    the server (--server) with the file holding its token (--token-file), if any."""

    settings: Settings
    as_json: bool
    server: str | None = None
    token_file: str | None = None
    quiet: bool = False
    actor: str | None = None

    @property
    def informs(self) -> bool:
        """Whether informational lines are printed: not with -q (JSON is always printed)."""
        return self.as_json or not self.quiet


pass_state = click.make_pass_decorator(CliState)


def _state(ctx: click.Context) -> CliState:
    state = ctx.find_object(CliState)
    assert state is not None  # the group callback always sets it
    return state


def open_store(ctx: click.Context, create: bool = False) -> Store:
    """Open the store the settings describe, or connect to the server; closed at the end.

    Only writing commands pass create: every other command on a missing embedded store fails
    with StoreNotFoundError ("no store at ...", exit 2) and creates nothing.
    """
    state = _state(ctx)
    if state.server is None:
        # The remote client (httpx) is imported only for a server: it was 0.15 s of a local push.
        return open_local_store(ctx, create)
    from artifactstore import connect

    return ctx.with_resource(connect(state.server, _token(state.token_file)))


def open_local_store(
    ctx: click.Context, create: bool = False, what: str | None = None
) -> ArtifactStore:
    """Open the local store the settings describe (see open_store); exit 2 with --server."""
    from artifactstore import ArtifactStore

    require_local(ctx, what)
    state = _state(ctx)
    opened = ArtifactStore.from_settings(state.settings, actor=state.actor, create=create)
    return ctx.with_resource(opened)


def require_local(ctx: click.Context, what: str | None = None) -> None:
    """Exit 2 with one line if --server is given: the command (or what of it) is local only."""
    if _state(ctx).server is not None:
        raise click.UsageError(
            f"'{what or ctx.command_path}' is not available with --server; "
            "it works on a local store only"
        )


def ci_actor(environ: Mapping[str, str]) -> str | None:
    """The actor a CI job is, from the variables GitHub Actions and GitLab CI set, or None.

    GitHub: 'github:<owner/repo>#<run id>/<job>'; GitLab: 'gitlab:<project path>#<job id>'.
    """
    if environ.get("GITHUB_ACTIONS") == "true" and environ.get("GITHUB_RUN_ID"):
        where = environ.get("GITHUB_REPOSITORY") or "-"
        job = environ.get("GITHUB_JOB")
        return f"github:{where}#{environ['GITHUB_RUN_ID']}" + (f"/{job}" if job else "")
    if environ.get("GITLAB_CI") == "true" and environ.get("CI_JOB_ID"):
        where = environ.get("CI_PROJECT_PATH") or "-"
        return f"gitlab:{where}#{environ['CI_JOB_ID']}"
    return None


def actor_of(given: str | None, environ: Mapping[str, str]) -> str | None:
    """Who the events of a local store name: --actor, else $ARTIFACTSTORE_ACTOR, else the CI
    job (ci_actor), else None: the store's default, 'user@host'."""
    if given is not None:
        if not given.strip():
            raise click.BadParameter("must not be empty", param_hint="--actor")
        return given
    return environ.get(ACTOR_ENV) or ci_actor(environ)


def _token(token_file: str | None) -> str | None:
    """The token: the first line of token_file, else $ARTIFACTSTORE_TOKEN, else none."""
    from artifactstore import ConfigError

    if token_file is None:
        return os.environ.get(TOKEN_ENV) or None
    try:
        text = Path(token_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read the token file {token_file!r}: {reason}") from None
    lines = text.strip().splitlines()
    if not lines:
        raise ConfigError(f"the token file {token_file!r} is empty")
    return lines[0].strip()


def is_empty_directory(path: Path) -> bool:
    """False only for a directory with entries in it (what pull refuses without force).

    A path that cannot be listed (missing, not a directory, unreadable) counts as empty: pull
    then creates it, or says in one sentence why it cannot write there (exit 2).
    """
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return True


def parse_meta(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """The --meta values (KEY=VALUE) as a dict; a key given twice is an error."""
    metadata: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
        if key in metadata:
            raise click.BadParameter(f"key {key!r} is given twice", param_hint="--meta")
        metadata[key] = value
    return metadata


def package_args(args: tuple[str, ...], rest: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """Split NAME VERSION (or NAME:VERSION, or NAME@blake3:<hex>) from the arguments after it.

    Returns the package as one text ('NAME:VERSION' or 'NAME@blake3:<hex>') and the rest.
    """
    from artifactstore import is_package_spec, parse_package_spec

    wanted = " ".join(("NAME VERSION", *rest))
    if args and is_package_spec(args[0]):
        ref, remaining = args[0], list(args[1:])
    elif len(args) >= 2:
        ref, remaining = f"{args[0]}:{args[1]}", list(args[2:])
        parse_package_spec(ref)  # checks the name and the version
    else:
        raise click.UsageError(f"expected {wanted} (or NAME:VERSION, NAME@blake3:<hex>)")
    if len(remaining) != len(rest):
        raise click.UsageError(f"expected {wanted} (or NAME:VERSION, NAME@blake3:<hex>)")
    return ref, remaining


retention_option = click.option(
    "--retention",
    "retention_class",
    default="standard",
    show_default=True,
    metavar="CLASS",
    help="ephemeral, ci, standard, release or legal-hold.",
)

meta_option = click.option(
    "--meta",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    callback=parse_meta,
    help="Metadata to record; repeatable. Values are kept as text.",
)

expect_digest_option = click.option(
    "--expect-digest",
    metavar="DIGEST",
    help="Fail (exit 1) unless the manifest digest is DIGEST (blake3:<hex>).",
)


def parse_checkpoints(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[int, str]:
    """The --checkpoint values (SEQ:blake3:<hex>) as {sequence: chain digest hex}."""
    from artifactstore import Digest, InvalidAddressError

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
