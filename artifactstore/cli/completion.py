"""Shell completion: the `completion` command and what a package argument completes to.

`completion bash|zsh|fish` prints Click's script, the same bytes
`_ARTIFACTSTORE_COMPLETE=bash_source artifactstore` prints. When the shell asks (Click's
`_ARTIFACTSTORE_COMPLETE=..._complete`), the group callback does not run: `complete_package`
reads the global options from the parsed context, opens the local store read-only (never
creating one) and lists names, or NAME's versions; it never raises and never prints, so a
missing or broken store completes to nothing. With --server it completes nothing (no
network round trip on a Tab). Library names are imported on a Tab only.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.shell_completion import CompletionItem, get_completion_class

from artifactstore.cli.failures import PROG

if TYPE_CHECKING:
    from artifactstore import ArtifactStore

COMPLETE_VAR = "_ARTIFACTSTORE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
_F = TypeVar("_F", bound=Callable[..., Any])


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    Commands, options and choices complete; package names complete from the local store
    (NAME, then NAME's versions, and NAME:VERSION); with --server, package names do not.
    Load the script in the shell's start-up file, as the examples show.

    \b
    Example:
      artifactstore completion bash > ~/.local/share/bash-completion/completions/artifactstore
      artifactstore completion zsh > "${fpath[1]}/_artifactstore"
      artifactstore completion fish > ~/.config/fish/completions/artifactstore.fish
    """
    kind = get_completion_class(shell)
    assert kind is not None  # the three Click registers
    script = kind(ctx.find_root().command, {}, PROG, COMPLETE_VAR).source()
    click.echo(script.encode(), nl=False)


def package_argument(metavar: str, files: bool = False, versions: int = 1) -> Callable[[_F], _F]:
    """The positional arguments of a package command (split by context.package_args), with
    package names completing: NAME then versions of it (that many), or NAME:VERSION (as
    many); files: the words after the package are local paths."""

    def complete(
        ctx: click.Context, _param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        before = ctx.params.get("args") or ()
        packages = len(before) if before and _is_spec(before[0]) else len(before) - 1
        if files and packages >= versions:
            return [CompletionItem(incomplete, type="file")]
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                if not before or (packages < versions and _is_spec(before[0])):
                    return _names_or_specs(ctx, incomplete)
                if 0 <= packages < versions and not _is_spec(before[0]):
                    return _items(_versions(ctx, before[0]), incomplete)
        except Exception:  # a Tab must never show a traceback: complete to nothing
            return []
        return []

    return click.argument("args", nargs=-1, metavar=metavar, shell_complete=complete)


def _is_spec(word: str) -> bool:
    return ":" in word or "@" in word


def _names_or_specs(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    if ":" in incomplete:
        name = incomplete.partition(":")[0]
        return _items([f"{name}:{v}" for v in _versions(ctx, name)], incomplete)
    store = _local_store(ctx)
    if store is None:
        return []
    with store:
        names = sorted({p.name for p in store.list_packages()})
    return _items(names, incomplete)


def _versions(ctx: click.Context, name: str) -> list[str]:
    store = _local_store(ctx)
    if store is None:
        return []
    with store:
        return [p.version for p in store.list_packages(name)]


def _items(values: list[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(v) for v in values if v.startswith(incomplete)]


def _local_store(ctx: click.Context) -> ArtifactStore | None:
    """The local store the global options and environment name, or None with --server."""
    from artifactstore import ENV_PREFIX, ArtifactStore, load_settings

    given = ctx.find_root().params
    if given.get("server") or os.environ.get(f"{ENV_PREFIX}SERVER"):
        return None
    settings = load_settings(
        os.environ, given.get("database_url"), given.get("storage_root"), given.get("storage_url")
    )
    return ArtifactStore.from_settings(settings, create=False)
