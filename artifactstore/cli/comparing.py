"""`diff`: the paths two finalized packages do not share, or hold differently.

Each side's file list is its manifest as the event log fixed it (`list_files`, checked against
the digest the views name), on a local store or a server alike. A path is changed when its
content (BLAKE3 content address) or its executable bit differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from artifactstore.cli import output
from artifactstore.cli.completion import package_argument
from artifactstore.cli.context import CliState, open_store, pass_state

if TYPE_CHECKING:
    from artifactstore import StoredFile
    from artifactstore.cli.context import Store

_USAGE = "expected NAME V1 V2, or two of NAME:VERSION and NAME@blake3:<hex>"


@dataclass(frozen=True, slots=True)
class Difference:
    """One path that differs: before is None when added, after None when removed."""

    path: str
    before: StoredFile | None
    after: StoredFile | None

    @property
    def kind(self) -> str:
        """'added', 'removed' or 'changed'."""
        return "added" if self.before is None else "removed" if self.after is None else "changed"

    @property
    def what_changed(self) -> list[str]:
        """For a changed path: 'content', 'executable' or both."""
        if self.before is None or self.after is None:
            return []
        what = []
        if self.before.content_address != self.after.content_address:
            what.append("content")
        if self.before.executable != self.after.executable:
            what.append("executable")
        return what


def differences(old: Sequence[StoredFile], new: Sequence[StoredFile]) -> list[Difference]:
    """The paths added, removed or changed from old to new, sorted by path."""
    before = {f.path: f for f in old}
    after = {f.path: f for f in new}
    found = [
        Difference(p, before.get(p), after.get(p)) for p in sorted(before.keys() | after.keys())
    ]
    return [d for d in found if d.kind != "changed" or d.what_changed]


@click.command()
@package_argument("NAME V1 V2", versions=2)
@pass_state
@click.pass_context
def diff(ctx: click.Context, state: CliState, args: tuple[str, ...]) -> None:
    """List the paths added, removed and changed from one finalized package to another.

    One line per path, sorted by path: '+ PATH DIGEST' added, '- PATH DIGEST' removed,
    '~ PATH OLD -> NEW' changed (its content, BLAKE3, differs), with ' [-x -> +x]' or
    ' [+x -> -x]' when the executable bit changed (alone, OLD -> NEW is one digest); an
    added or removed executable file ends in ' [+x]'. Identical packages print nothing. The
    exit code is 0 whether or not they differ; an unknown, open or ended package exits 2.
    Both sides can also be NAME:VERSION or NAME@blake3:<hex>, of one name or two.

    \b
    Example:
      artifactstore diff acme/app 1.4.1 1.4.2
      artifactstore --json diff acme/app:1.4.1 acme/app@blake3:9f2c...
    """
    old_ref, new_ref = _refs(args)
    store = open_store(ctx)
    found = differences(_files(store, old_ref), _files(store, new_ref))
    if state.as_json:
        output.emit_json({kind: [_json(d) for d in found if d.kind == kind] for kind in _KINDS})
        return
    for item in found:
        click.echo(_line(item))


_KINDS = ("added", "removed", "changed")


def _refs(args: tuple[str, ...]) -> tuple[str, str]:
    from artifactstore import is_package_spec, parse_package_spec

    if len(args) == 3 and not is_package_spec(args[0]):
        refs = (f"{args[0]}:{args[1]}", f"{args[0]}:{args[2]}")
    elif len(args) == 2 and all(is_package_spec(a) for a in args):
        refs = (args[0], args[1])
    else:
        raise click.UsageError(_USAGE)
    for ref in refs:
        parse_package_spec(ref)  # checks the name and the version (or digest)
    return refs


def _files(store: Store, ref: str) -> list[StoredFile]:
    from artifactstore import PackageStateError

    package = store.package(ref)
    if not package.is_finalized and not package.is_ended:
        raise PackageStateError(f"package {package} is {package.state}, not finalized")
    return store.list_files(ref)  # refuses an ended one


def _side(found: StoredFile) -> str:
    return str(found.content_address)


def _line(item: Difference) -> str:
    before, after = item.before, item.after
    if before is None:
        assert after is not None
        return f"+ {item.path} {_side(after)}" + (" [+x]" if after.executable else "")
    if after is None:
        return f"- {item.path} {_side(before)}" + (" [+x]" if before.executable else "")
    line = f"~ {item.path} {_side(before)}"
    if "content" in item.what_changed:
        line += f" -> {_side(after)}"
    if "executable" in item.what_changed:
        line += " [-x -> +x]" if after.executable else " [+x -> -x]"
    return line


def _json(item: Difference) -> dict[str, object]:
    """Added and removed: the file as `ls --json` has it; changed: path, before, after and
    what changed."""
    if item.before is None or item.after is None:
        return output.file_json(item.after or item.before)  # type: ignore[arg-type]
    return {
        "after": _file(item.after),
        "before": _file(item.before),
        "changed": item.what_changed,
        "path": item.path,
    }


def _file(found: StoredFile) -> dict[str, object]:
    described = output.file_json(found)
    del described["path"]
    return described


COMMANDS = (diff,)
