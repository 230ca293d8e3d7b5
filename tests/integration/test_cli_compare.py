"""Part of a package and the difference of two: `pull --include GLOB` and `diff NAME V1 V2`,
on a local store and through a server.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Callable, Iterator
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
def local(migrated_url: str, tmp_path: Path) -> Cli:
    """The CLI over a local store only (for what needs the blobs at hand)."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


def unique_name() -> str:
    return f"acme/c{uuid.uuid4().hex[:8]}"


def build(root: Path, files: dict[str, bytes], executable: tuple[str, ...] = ()) -> Path:
    """A build output holding files (path: bytes), the executable ones 0755."""
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
        if path in executable:
            (root / path).chmod(0o755)
    return root


TREE = {
    "README.txt": b"hello\n",
    "bin/app": b"#!/bin/sh\necho app\n",
    "bin/tool": b"#!/bin/sh\necho tool\n",
    "lib/a.so": b"\x7fELF a",
    "lib/sub/b.so": b"\x7fELF b",
    "docs/guide/x.md": b"# x\n",
}


def listing(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


# -- pull --include ---------------------------------------------------------------------------


def test_pull_include_writes_only_the_files_a_glob_matches(cli: Cli, tmp_path: Path) -> None:
    name = unique_name()
    cli.ok("push", name, "1", build(tmp_path / "tree", TREE, ("bin/app",)))
    out = tmp_path / "out"
    done = cli.ok("pull", name, "1", out, "--include", "bin/*", "--include", "**/*.so")
    assert done.text.startswith("pulled 4 files")
    assert listing(out) == ["bin/app", "bin/tool", "lib/a.so", "lib/sub/b.so"]
    assert (out / "lib" / "sub" / "b.so").read_bytes() == TREE["lib/sub/b.so"]
    assert stat.S_IMODE((out / "bin" / "app").stat().st_mode) & 0o100
    assert not stat.S_IMODE((out / "bin" / "tool").stat().st_mode) & 0o100
    # '*' does not cross '/'; '**' as a last component spans every level below.
    one = tmp_path / "one"
    cli.ok("pull", f"{name}:1", one, "--include", "*")
    assert listing(one) == ["README.txt"]
    docs = tmp_path / "docs"
    cli.ok("pull", f"{name}:1", docs, "--include", "docs/**")
    assert listing(docs) == ["docs/guide/x.md"]


def test_pull_include_json_lists_what_was_written(cli: Cli, tmp_path: Path) -> None:
    name = unique_name()
    cli.ok("push", name, "1", build(tmp_path / "tree", TREE, ("bin/app",)))
    document = cli.ok("--json", "pull", name, "1", tmp_path / "out", "--include", "bin/a?p").json()
    assert isinstance(document, dict)
    assert document["files"] == 1
    [written] = document["written"]
    assert written["path"] == "bin/app" and written["executable"] is True
    assert written["size"] == len(TREE["bin/app"])
    assert str(written["content_address"]).startswith("blake3:")


def test_pull_include_a_glob_matching_nothing_exits_2_and_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    name = unique_name()
    cli.ok("push", name, "1", build(tmp_path / "tree", TREE))
    out = tmp_path / "out"
    line = one_error_line(cli("pull", name, "1", out, "--include", "nope/*"), 2)
    assert "no file of" in line and "matches --include 'nope/*'" in line
    # One glob that matches and one that does not: still refused, as a typo would be.
    line = one_error_line(cli("pull", name, "1", out, "--include", "bin/*", "--include", "*.so"), 2)
    assert "'*.so'" in line and "bin/*" not in line
    assert not out.exists() or listing(out) == []
    for bad, says in (("", "empty"), ("/bin/*", "relative"), ("[z-a]", "not a valid glob")):
        assert says in one_error_line(cli("pull", name, "1", out, "--include", bad), 2)


def test_pull_include_verifies_each_file_it_writes(
    local: Cli, tmp_path: Path, corrupt_blob: Callable[[Path, bytes], None]
) -> None:
    name = unique_name()
    local.ok("push", name, "1", build(tmp_path / "tree", TREE))
    blobs = Path(local.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"])
    corrupt_blob(blobs, TREE["lib/a.so"])
    # The damaged file is left out: the pull of the others is whole and succeeds.
    local.ok("pull", name, "1", tmp_path / "fine", "--include", "bin/*")
    assert listing(tmp_path / "fine") == ["bin/app", "bin/tool"]
    # Asked for, it fails the check (exit 1) and nothing of the pull becomes visible.
    bad = tmp_path / "bad"
    result = local("pull", name, "1", bad, "--include", "bin/*", "--include", "lib/*")
    assert result.code == 1, result
    assert listing(bad) == []
