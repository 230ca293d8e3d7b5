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


# -- diff -------------------------------------------------------------------------------------


def digest_of(cli: Cli, package: str, path: str) -> str:
    """The content address `ls` lists for path in package."""
    for line in cli.ok("ls", package).text.splitlines():
        listed, _, _, address = line.split("\t")
        if listed == path:
            return address
    raise AssertionError(f"{package} has no {path}")


def test_diff_lists_added_removed_and_changed_paths_sorted(cli: Cli, tmp_path: Path) -> None:
    name = unique_name()
    old = {"a": b"one\n", "b": b"same\n", "c/d": b"gone\n", "e": b"both\n"}
    new = {"a": b"two\n", "b": b"same\n", "c/e": b"new\n", "e": b"both, now\n"}
    cli.ok("push", name, "1", build(tmp_path / "old", old, ("a",)))
    cli.ok("push", name, "2", build(tmp_path / "new", new, ("b", "c/e")))
    one, two = f"{name}:1", f"{name}:2"
    a1, a2, b = digest_of(cli, one, "a"), digest_of(cli, two, "a"), digest_of(cli, one, "b")
    d, e = digest_of(cli, one, "c/d"), digest_of(cli, two, "c/e")
    e1, e2 = digest_of(cli, one, "e"), digest_of(cli, two, "e")
    assert cli.ok("diff", name, "1", "2").text.splitlines() == [
        f"~ a {a1} -> {a2} [+x -> -x]",  # content and executable bit
        f"~ b {b} [-x -> +x]",  # the executable bit alone
        f"- c/d {d}",
        f"+ c/e {e} [+x]",
        f"~ e {e1} -> {e2}",  # content alone
    ]
    document = cli.ok("--json", "diff", name, "1", "2").json()
    assert isinstance(document, dict)
    assert [f["path"] for f in document["added"]] == ["c/e"]
    assert document["added"][0]["content_address"] == e
    assert document["added"][0]["executable"] is True
    assert [(f["path"], f["content_address"]) for f in document["removed"]] == [("c/d", d)]
    changed = {c["path"]: c for c in document["changed"]}
    assert list(changed) == ["a", "b", "e"]
    assert changed["a"]["changed"] == ["content", "executable"]
    assert changed["b"]["changed"] == ["executable"]
    assert changed["e"]["changed"] == ["content"]
    assert changed["a"]["before"]["content_address"] == a1
    assert changed["a"]["after"]["content_address"] == a2
    assert (changed["b"]["before"]["executable"], changed["b"]["after"]["executable"]) == (
        False,
        True,
    )


def test_diff_of_identical_packages_prints_nothing_and_exits_0(cli: Cli, tmp_path: Path) -> None:
    name = unique_name()
    tree = build(tmp_path / "tree", TREE)
    cli.ok("push", name, "1", tree)
    digest = cli.ok("push", name, "2", tree).text.strip()
    assert cli.ok("diff", name, "1", "2").text == ""
    assert cli.ok("--json", "diff", f"{name}:1", f"{name}@{digest}").json() == {
        "added": [],
        "changed": [],
        "removed": [],
    }
    # Two names work too: the question is what changed between two builds.
    other = unique_name()
    cli.ok("push", other, "7", build(tmp_path / "other", {"README.txt": b"hello\n"}))
    lines = cli.ok("diff", f"{name}:1", f"{other}:7").text.splitlines()
    assert [line.split(" ")[:2] for line in lines] == [
        ["-", "bin/app"],
        ["-", "bin/tool"],
        ["-", "docs/guide/x.md"],
        ["-", "lib/a.so"],
        ["-", "lib/sub/b.so"],
    ]


def test_diff_refuses_unknown_open_and_ended_packages(cli: Cli, tmp_path: Path) -> None:
    name = unique_name()
    cli.ok("push", name, "1", build(tmp_path / "tree", TREE))
    assert "no package" in one_error_line(cli("diff", name, "1", "9"), 2)
    cli.ok("create", name, "2")
    assert "not finalized" in one_error_line(cli("diff", name, "1", "2"), 2)
    cli.ok("abandon", name, "2")
    assert "abandoned" in one_error_line(cli("diff", f"{name}:2", f"{name}:1"), 2)
    for wrong in ((name, "1"), (name, "1", "2", "3"), (f"{name}:1", "2")):
        assert "expected NAME V1 V2" in one_error_line(cli("diff", *wrong), 2)
    assert "package name" in one_error_line(cli("diff", "Acme/App", "1", "2"), 2)
