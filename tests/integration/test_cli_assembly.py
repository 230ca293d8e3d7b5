"""Assembly by several jobs at the CLI: create, add, finalize, abandon, and show of an open package.

In-process through the `cli` fixture (Click's CliRunner), except the races: jobs adding at once
are real processes (`python -m artifactstore add ...`) on this leg's database, as in
test_races.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from served import Served, serving
from test_cli import Cli, base_env, one_error_line
from test_remote import runner

from artifactstore import AlreadyExistsError, ArtifactStore
from artifactstore.ingest import check_can_add, commit_files

NAME, VERSION = "acme/matrix", "7"


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database and an empty blob root."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def open_files(cli: Cli) -> dict[str, tuple[str, bool]]:
    """What `show` lists of the open package: content address and executable bit by path."""
    shown = cli.ok("show", NAME, VERSION).json()
    assert isinstance(shown, dict) and shown["state"] == "open"
    return {f["path"]: (f["content_address"], f["executable"]) for f in shown["files"]}


def address(data: bytes) -> str:
    return f"blake3:{blake3.blake3(data).hexdigest()}"


# -- the happy path ---------------------------------------------------------------------------


def test_create_add_show_finalize_round_trip(cli: Cli, tmp_path: Path) -> None:
    build = write_tree(tmp_path / "build", {"bin/app": b"#!/bin/sh\n", "lib/x.so": b"x"})
    (build / "bin" / "app").chmod(0o755)
    notes = write_tree(tmp_path / "notes", {"NOTES.txt": b"notes\n"}) / "NOTES.txt"

    created = cli.ok("create", NAME, VERSION, "--retention", "ci", "--meta", "sha=3f2a")
    assert created.text == f"created {NAME}:{VERSION} (open)\n"
    added = cli.ok("add", f"{NAME}:{VERSION}", build, "--prefix", "linux")
    assert added.text == f"added 2 files (11 B) to {NAME}:{VERSION}\n"
    cli.ok("add", NAME, VERSION, notes)
    cli.ok("add", NAME, VERSION, notes, "--prefix", "docs/")

    shown = cli.ok("show", NAME, VERSION).json()
    assert isinstance(shown, dict)
    assert (shown["state"], shown["manifest_digest"]) == ("open", None)
    assert (shown["metadata"], shown["retention_class"]) == ({"sha": "3f2a"}, "ci")
    assert open_files(cli) == {
        "NOTES.txt": (address(b"notes\n"), False),
        "docs/NOTES.txt": (address(b"notes\n"), False),
        "linux/bin/app": (address(b"#!/bin/sh\n"), True),
        "linux/lib/x.so": (address(b"x"), False),
    }

    digest = cli.ok("finalize", NAME, VERSION).text.strip()
    cbor = cli.ok("show", NAME, VERSION, "--format", "cbor").out
    assert digest == address(cbor)
    cli.ok("pull", NAME, VERSION, tmp_path / "out")
    assert (tmp_path / "out" / "linux" / "bin" / "app").read_bytes() == b"#!/bin/sh\n"
    assert os.access(tmp_path / "out" / "linux" / "bin" / "app", os.X_OK)
    [listed] = [line.split("\t") for line in cli.ok("ls").text.splitlines()]
    assert listed[:4] + listed[5:] == [f"{NAME}:{VERSION}", "finalized", "ci", "23 B", digest]


def test_json_output_of_the_assembly_commands(cli: Cli, tmp_path: Path) -> None:
    build = write_tree(tmp_path / "build", {"a": b"aaa", "b/c": b"cc"})
    created = cli.ok("--json", "create", NAME, VERSION).json()
    assert isinstance(created, dict) and list(created) == sorted(created)
    assert (created["name"], created["version"], created["state"]) == (NAME, VERSION, "open")
    added = cli.ok("--json", "add", NAME, VERSION, build).json()
    assert added == {"bytes": 5, "files": 2, "name": NAME, "version": VERSION}
    finalized = cli.ok("--json", "finalize", NAME, VERSION).json()
    assert isinstance(finalized, dict) and list(finalized) == sorted(finalized)
    assert finalized["digest"] == finalized["manifest_digest"]
    assert finalized["digest"] == cli.ok("ls").text.split()[-1]
    assert (finalized["name"], finalized["version"], finalized["files"]) == (NAME, VERSION, 2)

    cli.ok("create", NAME, "8")
    abandoned = cli.ok("--json", "abandon", f"{NAME}:8").json()
    assert abandoned == {"name": NAME, "state": "abandoned", "version": "8"}


def test_finalize_again_prints_the_same_digest_and_appends_nothing(cli: Cli) -> None:
    cli.ok("create", NAME, VERSION)
    digest = cli.ok("finalize", NAME, VERSION).text
    events = cli.events()
    assert cli.ok("finalize", NAME, VERSION).text == digest
    assert cli.events() == events


def test_abandon_drops_an_open_package(cli: Cli, tmp_path: Path) -> None:
    cli.ok("create", NAME, VERSION)
    cli.ok("add", NAME, VERSION, write_tree(tmp_path / "t", {"a": b"a"}))
    assert cli.ok("abandon", NAME, VERSION).text == f"abandoned {NAME}:{VERSION}\n"
    assert cli.ok("ls").text == ""
    assert cli.events()[-1][1] == "v1.package.abandoned"
    assert "was abandoned" in one_error_line(cli("abandon", NAME, VERSION), 2)
    assert "already exists" in one_error_line(cli("create", NAME, VERSION), 2)
    assert "abandoned" in cli.ok("ls", "--all").text


# -- adding again ------------------------------------------------------------------------------


def test_adding_the_same_content_again_succeeds_and_appends_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    build = write_tree(tmp_path / "build", {"a": b"one", "sub/b": b"two"})
    (build / "sub" / "b").chmod(0o755)
    cli.ok("create", NAME, VERSION)
    cli.ok("add", NAME, VERSION, build)
    cli.ok("add", NAME, VERSION, build / "a", "--prefix", "single")
    events = cli.events()
    assert cli.ok("add", NAME, VERSION, build).text == f"added 2 files (6 B) to {NAME}:{VERSION}\n"
    cli.ok("add", NAME, VERSION, build / "a", "--prefix", "single")
    assert cli.events() == events


def test_a_directory_partly_added_before_adds_only_its_new_files(cli: Cli, tmp_path: Path) -> None:
    build = write_tree(tmp_path / "build", {"a": b"one", "sub/b": b"two"})
    cli.ok("create", NAME, VERSION)
    cli.ok("add", NAME, VERSION, build)
    events = cli.events()
    write_tree(build, {"sub/new": b"three", "z": b"four"})
    cli.ok("add", NAME, VERSION, build)
    assert [kind for _, kind in cli.events()[len(events) :]] == ["v1.file.ingested"] * 2
    assert sorted(open_files(cli)) == ["a", "sub/b", "sub/new", "z"]


def test_adding_a_path_again_with_other_content_exits_2_naming_it(cli: Cli, tmp_path: Path) -> None:
    build = write_tree(tmp_path / "build", {"a": b"one", "sub/b": b"two"})
    cli.ok("create", NAME, VERSION)
    cli.ok("add", NAME, VERSION, build)
    before, events = open_files(cli), cli.events()
    (build / "sub" / "b").write_bytes(b"changed")
    line = one_error_line(cli("add", NAME, VERSION, build), 2)
    assert "already has 'sub/b' with other content" in line
    (build / "sub" / "b").write_bytes(b"two")
    (build / "a").chmod(0o755)
    line = one_error_line(cli("add", NAME, VERSION, build / "a"), 2)
    assert "already has 'a' with the executable bit unset" in line
    assert (open_files(cli), cli.events()) == (before, events)


def test_replace_in_the_library_still_replaces(store: ArtifactStore) -> None:
    package = store.create_package(NAME, VERSION)
    store.ingest_file(package, "a", b"one")
    count = len(list(store.tail_events()))
    store.ingest_file(package, "a", b"one")  # the same content: kept, nothing appended
    assert len(list(store.tail_events())) == count
    with pytest.raises(AlreadyExistsError, match="'a' with other content"):
        store.ingest_file(package, "a", b"two")
    store.ingest_file(package, "a", b"one", replace=True)  # recorded again, though the same
    store.ingest_file(package, "a", b"two", replace=True)
    assert len(list(store.tail_events())) == count + 2
    [stored] = store.list_files(package)
    assert str(stored.content_address) == address(b"two")


def test_a_path_added_between_check_and_commit_is_compared_under_the_lock(
    store: ArtifactStore,
) -> None:
    # Two jobs checked 'a' while the package lacked it; the first commits, and the second's
    # commit compares its content with the first's under the write lock.
    package = store.create_package(NAME, VERSION)
    known = check_can_add(store._db, package, ["a"])
    store.ingest_file(package, "a", b"first")
    same, other = store.dataplane.ingest_stream(b"first"), store.dataplane.ingest_stream(b"2nd")
    with pytest.raises(AlreadyExistsError, match="'a' with other content"):
        commit_files(store._db, package, [("a", other, False)], False, None, known)
    count = len(list(store.tail_events()))
    commit_files(store._db, package, [("a", same, False)], False, None, known)
    assert len(list(store.tail_events())) == count
    assert [str(f.content_address) for f in store.list_files(package)] == [address(b"first")]


# -- bad input ---------------------------------------------------------------------------------


def test_create_refuses_a_taken_version_and_bad_input(cli: Cli) -> None:
    cli.ok("create", NAME, VERSION)
    assert "already exists" in one_error_line(cli("create", NAME, VERSION), 2)
    assert "already exists" in one_error_line(cli("create", f"{NAME}:{VERSION}"), 2)
    one_error_line(cli("create", "Bad Name", "1"), 2)
    assert "retention class" in one_error_line(cli("create", NAME, "2", "--retention", "x"), 2)
    assert "KEY=VALUE" in one_error_line(cli("create", NAME, "2", "--meta", "novalue"), 2)
    one_error_line(cli("create", NAME), 2)
    assert [p.split("\t")[0] for p in cli.ok("ls").text.splitlines()] == [f"{NAME}:{VERSION}"]


@pytest.mark.parametrize("command", ["create", "add", "finalize", "abandon"])
def test_a_digest_instead_of_a_version_exits_2(cli: Cli, tmp_path: Path, command: str) -> None:
    extra = [str(tmp_path)] if command == "add" else []
    line = one_error_line(cli(command, f"{NAME}@blake3:{'0' * 64}", *extra), 2)
    assert "not a digest" in line


def test_add_refuses_what_it_cannot_add(cli: Cli, tmp_path: Path) -> None:
    build = write_tree(tmp_path / "build", {"a": b"one"})
    (tmp_path / "link").symlink_to(build)
    one_error_line(cli("add", NAME, VERSION, build), 2)  # no such package yet
    cli.ok("create", NAME, VERSION)
    assert "cannot read" in one_error_line(cli("add", NAME, VERSION, tmp_path / "missing"), 2)
    assert "not a regular file" in one_error_line(cli("add", NAME, VERSION, tmp_path / "link"), 2)
    one_error_line(cli("add", NAME, VERSION, build, "--prefix", "../up"), 2)
    one_error_line(cli("add", NAME, VERSION, build / "a", "--prefix", "/abs"), 2)
    one_error_line(cli("add", NAME, VERSION), 2)
    cli.ok("add", NAME, VERSION, build, "--prefix", "a")
    assert "directory prefix" in one_error_line(cli("add", NAME, VERSION, build / "a"), 2)
    cli.ok("finalize", NAME, VERSION)
    assert "is finalized" in one_error_line(cli("add", NAME, VERSION, build), 2)
    manifest = json.loads(cli.ok("show", NAME, VERSION).out)
    assert [f["path"] for f in manifest["files"]] == ["a/a"]


def test_finalize_and_abandon_refuse_what_they_cannot_close(cli: Cli) -> None:
    assert "no package" in one_error_line(cli("finalize", NAME, VERSION), 2)
    assert "no package" in one_error_line(cli("abandon", NAME, VERSION), 2)
    cli.ok("create", NAME, VERSION)
    cli.ok("finalize", NAME, VERSION)
    assert "is finalized" in one_error_line(cli("abandon", NAME, VERSION), 2)


def test_show_of_an_open_package_has_no_manifest_to_pin_or_encode(cli: Cli) -> None:
    cli.ok("create", NAME, VERSION)
    assert "not finalized" in one_error_line(cli("show", NAME, VERSION, "--format", "cbor"), 2)
    pinned = cli("show", NAME, VERSION, "--expect-digest", f"blake3:{'0' * 64}")
    assert "not finalized" in one_error_line(pinned, 2)
    assert cli.ok("show", NAME, VERSION).json() is not None


def test_only_create_makes_a_missing_store(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    empty = Cli(dict(os.environ), work)
    for args in (
        ["add", NAME, VERSION, "."],
        ["finalize", NAME, VERSION],
        ["abandon", NAME, VERSION],
    ):
        assert "no store at" in one_error_line(empty(*args), 2)
    assert not (work / ".artifactstore").exists()
    empty.ok("create", NAME, VERSION)
    assert (work / ".artifactstore" / "registry.db").exists()


# -- jobs at once, in separate processes -------------------------------------------------------


def start_add(
    cli: Cli, path: Path, *options: str, version: str = VERSION
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "artifactstore", "add", NAME, version, str(path), *options],
        env=cli.env,
        cwd=cli.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(processes: list[subprocess.Popen[bytes]]) -> list[tuple[int, str]]:
    """(exit code, stderr) of each process, in order."""
    results = []
    for process in processes:
        _, err = process.communicate(timeout=300)
        results.append((process.returncode, err.decode()))
    return results


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """gunicorn (4 workers) over a fresh store of this leg's database kind."""
    with serving(module_database_url, tmp_path_factory.mktemp("server")) as served:
        yield served


@pytest.mark.parametrize("where", ["local", pytest.param("server", marks=pytest.mark.slow)])
def test_eight_jobs_adding_disjoint_paths_at_once_all_land_in_the_package(
    request: pytest.FixtureRequest, cli: Cli, tmp_path: Path, where: str
) -> None:
    # Each job a process, as matrix jobs are; locally on this leg's database (SQLite, or
    # PostgreSQL on that leg), or through gunicorn's workers to it.
    if where == "server":
        cli = runner(request.getfixturevalue("server"), tmp_path / "runner")
    version = f"{VERSION}-{uuid.uuid4().hex[:8]}"
    jobs = {
        f"job{n}": {f"f{i}": os.urandom(100 + i) for i in range(25)} | {"big": os.urandom(200_000)}
        for n in range(8)
    }
    trees = [write_tree(tmp_path / job, files) for job, files in jobs.items()]
    cli.ok("create", NAME, version)
    adding = [start_add(cli, tree, "--prefix", tree.name, version=version) for tree in trees]
    assert finish(adding) == [(0, "")] * 8
    cli.ok("finalize", NAME, version)
    manifest = json.loads(cli.ok("show", NAME, version).out)
    expected = {
        f"{job}/{rel}": address(data) for job, files in jobs.items() for rel, data in files.items()
    }
    assert {f["path"]: f["digests"]["blake3"] for f in manifest["files"]} == {
        path: digest.removeprefix("blake3:") for path, digest in expected.items()
    }
    cli.ok("verify", NAME, version)
    if where == "local":
        cli.ok("verify", "--all")
        cli.ok("replay", "--check")


@pytest.mark.parametrize("same", [False, True], ids=["different", "same"])
def test_two_jobs_adding_one_path_at_once(cli: Cli, tmp_path: Path, same: bool) -> None:
    contents = [b"x" * 150_000, (b"x" if same else b"y") * 150_000]
    sources = [
        write_tree(tmp_path / f"job{n}", {"out.bin": data}) for n, data in enumerate(contents)
    ]
    cli.ok("create", NAME, VERSION)
    results = finish([start_add(cli, source / "out.bin") for source in sources])
    codes = [code for code, _ in results]
    if same:
        assert results == [(0, "")] * 2
    else:
        assert sorted(codes) == [0, 2], results
        loser = results[codes.index(2)][1]
        assert "already has 'out.bin' with other content" in loser, loser
        assert len(loser.splitlines()) == 1
    winner = contents[codes.index(0)]
    assert open_files(cli) == {"out.bin": (address(winner), False)}
    assert [kind for _, kind in cli.events()].count("v1.file.ingested") == 1
