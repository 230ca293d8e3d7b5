"""Finding versions with `ls`: version order, --meta and --latest, a package's files; on a
local store and through a server (gunicorn, as test_remote.py starts it).

In-process through test_cli.py's Cli; each test uses its own package names, since the
server is one per module.
"""

from __future__ import annotations

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


@pytest.fixture
def name() -> str:
    """A package name no other test uses."""
    return f"acme/v{uuid.uuid4().hex[:8]}"


def push(cli: Cli, tmp_path: Path, name: str, version: str, *meta: str) -> None:
    tree = tmp_path / f"tree-{version}"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "app").write_bytes(f"app {version}\n".encode())
    (tree / "bin" / "app").chmod(0o755)
    (tree / "notes.txt").write_text("n" * 100)
    args = [arg for item in meta for arg in ("--meta", item)]
    cli.ok("push", name, version, tree, *args)


def test_ls_orders_versions_as_versions_newest_first_with_size_and_time(
    cli: Cli, tmp_path: Path, name: str
) -> None:
    for version in ("1.9.0", "1.10.0", "1.2.10", "1.2.9"):
        push(cli, tmp_path, name, version)
    cli.ok("create", name, "2.0.0")
    lines = [line.split("\t") for line in cli.ok("ls", name).text.splitlines()]
    assert [fields[0] for fields in lines] == [
        f"{name}:{v}" for v in ("2.0.0", "1.10.0", "1.9.0", "1.2.10", "1.2.9")
    ]
    assert lines[0][1:5] == ["open", "standard", "0 B", "-"]
    assert lines[1][3] == "111 B" and lines[1][4].endswith("Z")
    listed = cli.ok("--json", "ls", name).json()
    assert isinstance(listed, list)
    assert [(p["version"], p["file_count"], p["size"]) for p in listed] == [
        ("2.0.0", 0, 0),
        ("1.10.0", 2, 111),
        ("1.9.0", 2, 110),
        ("1.2.10", 2, 111),
        ("1.2.9", 2, 110),
    ]


def test_ls_meta_latest_prints_the_newest_finalized_match(
    cli: Cli, tmp_path: Path, name: str
) -> None:
    push(cli, tmp_path, name, "1.9", "branch=main")
    push(cli, tmp_path, name, "1.10", "branch=main", "os=linux")
    push(cli, tmp_path, name, "1.11", "branch=feature")
    cli.ok("create", name, "1.12", "--meta", "branch=main")  # open: never the latest
    latest = cli.ok("ls", name, "--meta", "branch=main", "--latest").text
    assert latest.split("\t")[0] == f"{name}:1.10"
    assert [
        line.split("\t")[0]
        for line in cli.ok("ls", name, "--meta", "branch=main").text.splitlines()
    ] == [
        f"{name}:1.12",
        f"{name}:1.10",
        f"{name}:1.9",
    ]
    found = cli.ok("--json", "ls", name, "--meta", "branch=main", "--meta", "os=linux", "--latest")
    package = found.json()
    assert isinstance(package, dict) and package["version"] == "1.10"
    # A script pulls what it found, pinned to the digest it saw.
    pinned = f"{package['name']}@{package['manifest_digest']}"
    cli.ok("pull", pinned, tmp_path / "out")
    assert (tmp_path / "out" / "bin" / "app").read_bytes() == b"app 1.10\n"
    none = cli("ls", name, "--meta", "branch=nope", "--latest")
    assert "no match" in one_error_line(none, 2)
    assert "--latest needs NAME" in one_error_line(cli("ls", "--latest"), 2)


def test_ls_name_version_lists_the_files(cli: Cli, tmp_path: Path, name: str) -> None:
    push(cli, tmp_path, name, "3")
    for args in ((name, "3"), (f"{name}:3",)):
        lines = [line.split("\t") for line in cli.ok("ls", *args).text.splitlines()]
        assert [fields[:3] for fields in lines] == [
            ["bin/app", "6", "x"],
            ["notes.txt", "100", "-"],
        ]
        assert all(fields[3].startswith("blake3:") for fields in lines)
    files = cli.ok("--json", "ls", name, "3").json()
    assert isinstance(files, list) and [f["path"] for f in files] == ["bin/app", "notes.txt"]
    digest = cli.ok("--json", "ls", name).json()[0]["manifest_digest"]  # type: ignore[index]
    assert cli.ok("ls", f"{name}@{digest}").text == cli.ok("ls", name, "3").text
