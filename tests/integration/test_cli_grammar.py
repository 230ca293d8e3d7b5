"""One package argument grammar: NAME VERSION, NAME:VERSION and NAME@blake3:<hex> for every
command that takes a package, on a local store and through a server; and what an unknown or
wrongly spelled package says.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import Served, serving
from test_cli import Cli, base_env, one_error_line
from test_remote import runner


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """gunicorn over a fresh store, for this module's remote leg."""
    with serving(module_database_url, tmp_path_factory.mktemp("server")) as served:
        yield served


@pytest.fixture(params=["local", "server"])
def cli(request: pytest.FixtureRequest, migrated_url: str, tmp_path: Path) -> Cli:
    """The CLI over a local store, or over the module's server (both on this leg's database)."""
    if request.param == "local":
        env = {**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}
        return Cli(env, tmp_path)
    return runner(request.getfixturevalue("server"), tmp_path / "runner")


def spellings(name: str, version: str, digest: str) -> list[tuple[str, ...]]:
    return [(name, version), (f"{name}:{version}",), (f"{name}@{digest}",)]


def test_every_command_takes_every_spelling_of_a_package(cli: Cli, tmp_path: Path) -> None:
    name = f"acme/g{uuid.uuid4().hex[:8]}"
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    digest = cli.ok("push", name, "1", tree).text.strip()
    cli.ok("push", f"{name}:1", tree)  # identical again: fine
    for n, package in enumerate(spellings(name, "1", digest)):
        assert cli.ok("pull", *package, tmp_path / f"out{n}").text.startswith("pulled 1 file")
        assert "ok" in cli.ok("verify", *package).text
        assert json.loads(cli.ok("show", *package).out)["package"]["version"] == "1"
        assert cli.ok("cat", *package, "a.txt").out == b"a\n"
        assert cli.ok("ls", *package).text.startswith("a.txt\t2\t-\t")
    for package in ((name, "2"), (f"{name}:2.1",)):
        cli.ok("create", *package)
        cli.ok("add", *package, tree)
        cli.ok("finalize", *package)
    cli.ok("create", f"{name}:3")
    cli.ok("abandon", f"{name}:3")
    # A pin names a finalized version: commands that make or change one refuse it.
    for command in ("create", "finalize", "abandon"):
        assert "not a digest" in one_error_line(cli(command, f"{name}@{digest}"), 2)
    assert "not a digest" in one_error_line(cli("push", f"{name}@{digest}", tree), 2)


def test_an_unknown_package_lists_versions_that_exist(cli: Cli, tmp_path: Path) -> None:
    name = f"acme/u{uuid.uuid4().hex[:8]}"
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    for version in ("1.0", "1.1", "1.2", "1.10", "2.0", "2.1", "3.0"):
        cli.ok("push", name, version, "--allow-empty", tree)
    line = one_error_line(cli("show", name, "9.9"), 2)
    assert f"no package {name}:9.9" in line
    assert "versions that exist: 3.0, 2.1, 2.0, 1.10, 1.2" in line
    line = one_error_line(cli("pull", f"{name}@blake3:{'0' * 64}", tmp_path / "out"), 2)
    assert "versions that exist: 3.0" in line
    line = one_error_line(cli("show", "acme/nothing-here", "1"), 2)
    assert "no version of acme/nothing-here exists" in line


def test_a_name_with_capitals_says_names_are_lowercase(cli: Cli) -> None:
    for args in (("show", "Acme/App", "1"), ("ls", "Acme/App"), ("pull", "Acme/App:1", "out")):
        line = one_error_line(cli(*args), 2)
        assert "package names are lowercase" in line and "'acme/app'" in line
