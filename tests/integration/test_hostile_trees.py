"""Trees and inputs a careless or hostile build hands to push and assembly (issue 11).

Each is refused up front with exit 2 (library: an InvalidInputError) naming what is wrong and
leaving nothing behind, or (the store's own files) quietly left out. The CLI runs in-process
through `test_cli.Cli`; a non-root user and a writer racing the push run as real processes.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_cli import Cli, base_env, one_error_line

import artifactstore
from artifactstore import (
    ArtifactStore,
    InvalidInputError,
    InvalidMetadataError,
    InvalidPathError,
    schema,
)
from artifactstore.ingest import check_can_add, commit_files

NAME, VERSION = "acme/app", "1.0"


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database and an empty blob root."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


def nothing_recorded(cli: Cli, stored_blobs: Callable[[Path], int]) -> None:
    """No event, no package, no upload session and no blob."""
    url = cli.env["ARTIFACTSTORE_DATABASE_URL"]
    root = Path(cli.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"])
    with ArtifactStore.open(url, root) as store:
        assert list(store.tail_events()) == []
        assert store.list_packages() == []
        assert sessions(store) == 0
    assert stored_blobs(root) == 0


def sessions(store: ArtifactStore) -> int:
    """How many upload sessions the store records."""
    with store.engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(schema.upload_sessions))
        return int(count.scalar_one())


# -- 1. paths a package cannot hold -----------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "mentions"),
    [
        (["ok.txt", "a\nproblem: fake line"], ["'a\\nproblem: fake line'", "control character"]),
        (["ok.txt", "tab\there"], ["'tab\\there'", "control character"]),
        (["\u00e9t\u00e9.txt", "e\u0301te\u0301.txt"], ["NFC normalization", "'\\xe9t\\xe9.txt'"]),
        (["README", "readme"], ["'README'", "'readme'", "differ only by case"]),
        (["Docs", "docs/guide.txt"], ["'Docs'", "'docs/guide.txt'", "directory prefix"]),
    ],
    ids=["newline", "tab", "nfc-twins", "case-twins", "case-prefix"],
)
def test_push_refuses_paths_a_package_cannot_hold(
    cli: Cli,
    tmp_path: Path,
    stored_blobs: Callable[[Path], int],
    names: list[str],
    mentions: list[str],
) -> None:
    tree = tmp_path / "dist"
    for name in names:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(name.encode() * 5000)  # not small: stored one by one
    line = one_error_line(cli("push", NAME, VERSION, tree), 2)
    assert all(text in line for text in mentions), line
    nothing_recorded(cli, stored_blobs)


def test_assembly_refuses_a_file_and_a_directory_of_one_name(store: ArtifactStore) -> None:
    package = store.create_package(NAME, VERSION)
    store.ingest_file(package, "file", b"outer")
    events = list(store.tail_events())
    for path in ("file/inner", "FILE/inner", "File"):
        with pytest.raises(InvalidPathError) as info:
            store.ingest_file(package, path, b"inner")
        assert "'file'" in str(info.value)
        assert repr(path) in str(info.value)
    other = store.create_package(NAME, "2.0")
    store.ingest_file(other, "a/b/c", b"deep")
    with pytest.raises(InvalidPathError, match="'a/b' is a directory prefix of the other"):
        store.ingest_file(other, "a/b", b"shallow")
    assert [e.event_type for e in store.tail_events()][len(events) :] == [
        "v1.package.created",
        "v1.retention.assigned",
        "v1.file.ingested",
    ]
    store.finalize_package(package)
    assert [f.path for f in store.list_files(package)] == ["file"]


def test_assembly_replace_may_repeat_a_path_but_not_its_twin(store: ArtifactStore) -> None:
    package = store.create_package(NAME, VERSION)
    store.ingest_file(package, "bin/app", b"one")
    store.ingest_file(package, "bin/app", b"two", replace=True)
    for twin in ("bin/App", "bin/app/x", "bin"):
        with pytest.raises(InvalidPathError, match="'bin/app'"):
            store.ingest_file(package, twin, b"three", replace=True)
    assert [(f.path, f.size) for f in store.list_files(package)] == [("bin/app", 3)]


def test_ingest_directory_is_checked_against_the_files_already_there(
    store: ArtifactStore, tmp_path: Path, stored_blobs: Callable[[Path], int], blob_root: Path
) -> None:
    package = store.create_package(NAME, VERSION)
    store.ingest_file(package, "lib", b"a file named lib")
    tree = tmp_path / "dist"
    (tree / "lib").mkdir(parents=True)
    (tree / "a.bin").write_bytes(os.urandom(100_000))
    (tree / "lib" / "libacme.so").write_bytes(os.urandom(100_000))
    before = stored_blobs(blob_root)
    with pytest.raises(InvalidPathError, match=r"'lib' and 'lib/libacme\.so'"):
        store.ingest_directory(package, tree)
    assert stored_blobs(blob_root) == before
    assert [f.path for f in store.list_files(package)] == ["lib"]


def test_a_clashing_path_added_between_check_and_commit_is_refused(store: ArtifactStore) -> None:
    # Two assembly jobs: the second checked its path before the first committed 'a'; the
    # commit checks again under the lock.
    package = store.create_package(NAME, VERSION)
    known = check_can_add(store._db, package, ["a/b"])
    stored, executable = store.dataplane.ingest_stream(b"inner"), False
    store.ingest_file(package, "a", b"outer")
    with pytest.raises(InvalidPathError, match="'a' and 'a/b'"):
        commit_files(store._db, package, [("a/b", stored, executable)], False, None, known)
    assert [f.path for f in store.list_files(package)] == ["a"]


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("dir/" + "x" * 256, "segment of 256 bytes"),
        ("a\nproblem: fake line", "control character"),
        ("a\x7f", "control character"),
    ],
)
def test_ingest_file_refuses_a_path_no_file_system_can_hold(
    store: ArtifactStore, path: str, rule: str
) -> None:
    package = store.create_package(NAME, VERSION)
    with pytest.raises(InvalidPathError, match=rule):
        store.ingest_file(package, path, b"data")
    assert store.list_files(package) == []


# -- 2. a file that changes while it is read --------------------------------------------------

_APPENDER = """
import sys, time
with open(sys.argv[1], "ab", buffering=0) as f:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        f.write(b"x" * 65536)
        time.sleep(0.001)
"""


@contextlib.contextmanager
def appending(folder: Path) -> Iterator[Path]:
    """A 16 MiB file folder/build.log that another process keeps appending to until the end."""
    target = folder / "build.log"
    target.write_bytes(os.urandom(16 << 20))
    writer = subprocess.Popen([sys.executable, "-c", _APPENDER, str(target)])
    try:
        started = target.stat().st_size
        while target.stat().st_size == started:
            time.sleep(0.005)
        yield target
    finally:
        writer.terminate()
        writer.wait(timeout=30)


def test_a_file_growing_while_it_is_pushed_is_refused(cli: Cli, tmp_path: Path) -> None:
    tree = tmp_path / "dist"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"steady\n")
    with appending(tree) as target:
        line = one_error_line(cli("push", NAME, VERSION, tree), 2)
    assert f"{str(target)!r} changed while reading" in line
    url = cli.env["ARTIFACTSTORE_DATABASE_URL"]
    with ArtifactStore.open(url, cli.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"]) as store:
        assert (list(store.tail_events()), store.list_packages(), sessions(store)) == ([], [], 0)


def test_a_file_growing_while_a_re_push_compares_it_is_refused(cli: Cli, tmp_path: Path) -> None:
    tree = tmp_path / "dist"
    tree.mkdir()
    (tree / "build.log").write_bytes(b"first\n")
    cli.ok("push", NAME, VERSION, tree)
    events = cli.events()
    with appending(tree) as target:
        line = one_error_line(cli("push", NAME, VERSION, tree), 2)
    # Not "different content": the comparison read no snapshot of the file.
    assert f"{str(target)!r} changed while reading" in line
    assert cli.events() == events


def test_a_file_changed_while_ingest_file_reads_it_is_refused(
    store: ArtifactStore, tmp_path: Path
) -> None:
    package = store.create_package(NAME, VERSION)
    with appending(tmp_path) as target, pytest.raises(InvalidInputError, match="changed while"):
        store.ingest_file(package, "build.log", target)
    assert store.list_files(package) == []


# -- 3. the store's own files -----------------------------------------------------------------


def test_pushing_the_directory_that_holds_the_default_store_leaves_the_store_out(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "a.txt").write_text("a\n")
    (work / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    cli = Cli(dict(os.environ), work)  # no ARTIFACTSTORE_*: ./.artifactstore/ inside work
    first = cli.ok("push", NAME, VERSION, ".").text
    assert sorted(p.name for p in (work / ".artifactstore").iterdir()) == [
        "blobs",
        "registry.db",
        "registry.db.lock",
    ]
    assert cli.ok("push", NAME, VERSION, ".").text == first
    with ArtifactStore.open(
        f"sqlite:///{work}/.artifactstore/registry.db", work / ".artifactstore/blobs"
    ) as store:
        assert [f.path for f in store.list_files((NAME, VERSION))] == ["a.txt", "sub/b.bin"]


def test_the_store_files_are_told_by_identity_not_by_name(tmp_path: Path) -> None:
    tree = tmp_path / "dist"
    (tree / "state").mkdir(parents=True)
    (tree / "copy" / "blobs").mkdir(parents=True)
    (tree / "copy" / "reg.sqlite").write_bytes(b"a file named like the database")
    (tree / "copy" / "blobs" / "x").write_bytes(b"a folder named like the blob root")
    (tree / "registry.db").write_bytes(b"a decoy")
    (tree / "src.c").write_bytes(b"int main;")
    # The store is named through a symlink; the tree by its real path.
    (tmp_path / "link").symlink_to(tree)
    url = f"sqlite:///{tmp_path}/link/state/reg.sqlite"
    with ArtifactStore.open(url, tmp_path / "link" / "state" / "blobs") as store:
        first = store.push(NAME, VERSION, tree)
        assert [f.path for f in store.list_files((NAME, VERSION))] == [
            "copy/blobs/x",
            "copy/reg.sqlite",
            "registry.db",
            "src.c",
        ]
        assert store.push(NAME, VERSION, tree).digest == first.digest
    assert {"blobs", "reg.sqlite"} <= {p.name for p in (tree / "state").iterdir()}


# -- 4. an empty directory --------------------------------------------------------------------


@pytest.mark.parametrize("inside", [[], ["empty/deeper"]], ids=["empty", "only-directories"])
def test_an_empty_directory_needs_allow_empty(
    cli: Cli, tmp_path: Path, stored_blobs: Callable[[Path], int], inside: list[str]
) -> None:
    tree = tmp_path / "dist"
    tree.mkdir()
    for folder in inside:
        (tree / folder).mkdir(parents=True)
    line = one_error_line(cli("push", NAME, VERSION, tree), 2)
    assert f"{str(tree)!r} is empty" in line
    assert "--allow-empty" in line
    nothing_recorded(cli, stored_blobs)
    cli.ok("push", NAME, VERSION, tree, "--allow-empty")
    assert cli.ok("ls").text.startswith(f"{NAME}:{VERSION}")


def test_the_library_refuses_an_empty_push_unless_allowed(
    store: ArtifactStore, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="is empty"):
        store.push(NAME, VERSION, tmp_path)
    assert store.list_packages() == []
    assert store.push(NAME, VERSION, tmp_path, allow_empty=True).files == 0


# -- 5. a re-push with other metadata or retention --------------------------------------------


@pytest.mark.parametrize(
    ("options", "mentions"),
    [
        (("--meta", "git_sha=other"), "different metadata"),
        ((), "different metadata"),
        (("--meta", "git_sha=3f2a", "--meta", "extra=1"), "different metadata"),
        (("--meta", "git_sha=3f2a", "--retention", "ci"), "retention class 'ci'"),
        (("--meta", "git_sha=3f2a", "--retention", "bogus"), "'bogus'"),
        (("--retention", "bogus"), "'bogus'"),
    ],
    ids=["other-meta", "no-meta", "more-meta", "other-class", "unknown-class", "unknown-first"],
)
def test_a_re_push_with_other_metadata_or_class_exits_2_and_changes_nothing(
    cli: Cli, tmp_path: Path, options: tuple[str, ...], mentions: str
) -> None:
    tree = tmp_path / "dist"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    first = cli.ok("push", NAME, VERSION, tree, "--meta", "git_sha=3f2a").text
    events = cli.events()
    line = one_error_line(cli("push", NAME, VERSION, tree, *options), 2)
    assert mentions in line
    assert cli.events() == events
    assert cli.ok("push", NAME, VERSION, tree, "--meta", "git_sha=3f2a").text == first


# -- 6. metadata size -------------------------------------------------------------------------


def test_metadata_over_64_kib_is_refused(
    cli: Cli, tmp_path: Path, stored_blobs: Callable[[Path], int]
) -> None:
    tree = tmp_path / "dist"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    line = one_error_line(cli("push", NAME, VERSION, tree, "--meta", "notes=" + "x" * 70_000), 2)
    assert "64 KiB" in line
    nothing_recorded(cli, stored_blobs)
    url = cli.env["ARTIFACTSTORE_DATABASE_URL"]
    with ArtifactStore.open(url, cli.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"]) as store:
        many = {f"key{i}": ["v" * 100] * 10 for i in range(100)}
        with pytest.raises(InvalidMetadataError, match="at most 65536"):
            store.create_package(NAME, VERSION, metadata=many)
        assert store.list_packages() == []


# -- 7. unreadable files and a read-only blob root, as a user without root's rights -----------


@dataclass(frozen=True)
class User:
    """Whom the CLI runs as (an unprivileged OS user when the tests run as root, else us), with
    a Python it can start and the path to find artifactstore from there."""

    uid: int | None
    gid: int | None
    python: str
    pythonpath: str

    def own(self, path: Path) -> None:
        """Give path (and what is under it) to this user."""
        if self.uid is None or self.gid is None:
            return
        for item in [path, *path.rglob("*")]:
            os.chown(item, self.uid, self.gid, follow_symlinks=False)

    def cli(self, work: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """Run the CLI in work with the default store (work/.artifactstore/)."""
        return subprocess.run(
            [self.python, "-m", "artifactstore", *map(str, args)],
            cwd=work,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(work),
                "PYTHONPATH": self.pythonpath,
            },
            user=self.uid,
            group=self.gid,
            extra_groups=[] if self.uid is not None else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _usable_by_others(path: Path) -> bool:
    # The interpreter and every folder above it must be open to other users (a pyenv Python
    # under /root is not).
    try:
        return bool(path.stat().st_mode & stat.S_IXOTH) and all(
            p.stat().st_mode & stat.S_IXOTH for p in path.parents
        )
    except OSError:
        return False


@contextmanager
def _open_to_others(paths: list[Path]) -> Iterator[None]:
    """Let other users pass through the folders above paths (tox keeps .tox/ at 0700), and
    restore their modes afterwards."""
    changed: dict[Path, int] = {}
    for path in paths:
        for folder in [path, *path.parents]:
            mode = folder.stat().st_mode
            if folder not in changed and not mode & stat.S_IXOTH:
                changed[folder] = stat.S_IMODE(mode)
                folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    try:
        yield
    finally:
        for folder, mode in changed.items():
            folder.chmod(mode)


@pytest.fixture
def user() -> Iterator[User]:
    """An unprivileged user; as root, 'nobody' (the tests never run as a user root trusts)."""
    source = str(Path(artifactstore.__file__).resolve().parents[1])
    site = [p for p in sys.path if p.endswith("site-packages")]
    pythonpath = os.pathsep.join([source, *site])
    if os.geteuid() != 0:
        yield User(None, None, sys.executable, pythonpath)
        return
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no 'nobody' user to run the CLI as")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(sys.executable).resolve(), Path("/usr/bin", version)]
    usable = [str(c) for c in candidates if _usable_by_others(c)]
    if not usable:
        pytest.skip(f"running as root and no {version} that 'nobody' can run")
    with _open_to_others([Path(p) for p in (source, *site)]):
        yield User(entry.pw_uid, entry.pw_gid, usable[0], pythonpath)


@pytest.fixture
def work(user: User) -> Iterator[Path]:
    """A folder the user owns, reachable by it (pytest's tmp_path under /tmp/pytest-of-root
    is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="artifactstore-hostile-", dir="/tmp"))
    folder.chmod(0o755)
    user.own(folder)
    try:
        yield folder
    finally:
        for item in [folder, *folder.rglob("*")]:
            if item.is_dir() and not item.is_symlink():
                item.chmod(0o755)
        shutil.rmtree(folder)


def default_store(work: Path) -> ArtifactStore:
    """The store the CLI made in work."""
    root = work / ".artifactstore"
    return ArtifactStore.open(f"sqlite:///{root}/registry.db", root / "blobs")


def test_an_unreadable_file_is_found_before_anything_is_stored(
    user: User, work: Path, stored_blobs: Callable[[Path], int]
) -> None:
    tree = work / "dist"
    tree.mkdir()
    (tree / "a.bin").write_bytes(os.urandom(200_000))
    (tree / "b.txt").write_text("b\n")
    (tree / "z-secret").write_text("no one may read this\n")
    user.own(tree)
    (tree / "z-secret").chmod(0)
    done = user.cli(work, "push", NAME, VERSION, tree)
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"cannot read {str(tree / 'z-secret')!r}: permission denied" in done.stderr
    with default_store(work) as store:
        assert (list(store.tail_events()), store.list_packages(), sessions(store)) == ([], [], 0)
    assert stored_blobs(work / ".artifactstore" / "blobs") == 0


def test_a_read_only_blob_root_fails_the_push_and_leaves_nothing(user: User, work: Path) -> None:
    tree = work / "dist"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    user.own(tree)
    assert user.cli(work, "push", NAME, "1", tree).returncode == 0
    with default_store(work) as store:
        events = list(store.tail_events())
    (tree / "big.bin").write_bytes(os.urandom(300_000))
    (tree / "small.txt").write_text("small\n")
    user.own(tree)
    blobs = work / ".artifactstore" / "blobs"
    for folder in [blobs, *blobs.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o555)
    done = user.cli(work, "push", NAME, "2", tree)
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    with default_store(work) as store:
        assert list(store.tail_events()) == events
        assert [p.version for p in store.list_packages()] == ["1"]
        assert sessions(store) == 0


def test_ingest_file_still_reads_a_named_pipe(store: ArtifactStore, tmp_path: Path) -> None:
    # A FIFO has no size to compare with what was read: it is not "changed while reading".
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = subprocess.Popen(
        [sys.executable, "-c", f"open({str(fifo)!r}, 'wb').write(b'streamed' * 1000)"]
    )
    package = store.create_package(NAME, VERSION)
    stored = store.ingest_file(package, "streamed.bin", fifo)
    assert writer.wait(timeout=30) == 0
    assert stored.size == 8000
