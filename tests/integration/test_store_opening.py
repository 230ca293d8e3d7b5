"""Opening a store from settings that are wrong or hostile (SPEC "Contracts users rely on").

Only writes create a store; a URL never prints its password, wherever it appears; a database
path under a file is a sentence, not a traceback, at the CLI, in the library and in the web
app; a read-only blob root can still be verified and pulled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy.exc
from test_cli import Cli, Result, base_env

from artifactstore import ArtifactStore, DatabaseError, StoreNotFoundError
from artifactstore.database import reason
from artifactstore.web import create_app

SECRET = "qsecret-7f3a"
NAME, VERSION = "acme/app", "1.0"


def files_under(directory: Path) -> list[str]:
    """Every path under directory, relative, sorted (what a command may have created)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.fixture
def empty_cli(tmp_path: Path) -> Cli:
    """A CLI with no ARTIFACTSTORE_* settings, in an empty working directory."""
    work = tmp_path / "work"
    work.mkdir()
    return Cli(dict(os.environ), work)


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database and an empty blob root."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small text file and a file too large for the small-blob tier."""
    root = tmp_path / "dist"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "small.txt").write_bytes(b"small file\n")
    (root / "large.bin").write_bytes(os.urandom(200_000))
    return root


READ_COMMANDS = [
    ["ls"],
    ["verify", "--all"],
    ["health"],
    ["--json", "health"],
    ["checkpoint"],
    ["replay", "--check"],
    ["events"],
    ["show", NAME, VERSION],
    ["cat", NAME, VERSION, "sub/small.txt"],
    ["pull", NAME, VERSION, "out"],
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_a_read_on_a_missing_store_exits_2_and_creates_nothing(
    empty_cli: Cli, tmp_path: Path, args: list[str]
) -> None:
    default = empty_cli(*args)
    assert default.code == 2, default
    assert "no store at .artifactstore/registry.db" in default.err
    typo = tmp_path / "typo" / "registry.db"
    mistyped = empty_cli("--db", f"sqlite:///{typo}", *args)
    assert mistyped.code == 2, mistyped
    message = (
        f"no store at {typo}: the database file does not exist "
        "(check --db or ARTIFACTSTORE_DATABASE_URL; push or migrate create a store)"
    )
    if "--json" in args:  # one JSON object on stderr, the same exit code
        error = {"code": "store_not_found", "message": message}
        assert json.loads(mistyped.err) == {"error": error}
    else:
        assert mistyped.err == f"artifactstore: error: {message}\n"
    assert mistyped.out == b""
    assert files_under(empty_cli.cwd) == []
    assert not typo.parent.exists()


def test_health_does_not_recreate_a_deleted_database(empty_cli: Cli, tree: Path) -> None:
    empty_cli.ok("push", NAME, VERSION, tree)
    assert empty_cli.ok("health").text.startswith("status: ok")
    database = empty_cli.cwd / ".artifactstore" / "registry.db"
    database.unlink()
    result = empty_cli("health")
    assert result.code == 2 and "no store at" in result.err
    assert not database.exists()


@pytest.mark.parametrize("command", [["push", NAME, VERSION, "DIR"], ["migrate"]])
def test_push_and_migrate_create_a_missing_store(
    empty_cli: Cli, tree: Path, command: list[str]
) -> None:
    empty_cli.ok(*[str(tree) if arg == "DIR" else arg for arg in command])
    assert (empty_cli.cwd / ".artifactstore" / "registry.db").is_file()
    empty_cli.ok("ls")


def test_the_library_creates_a_store_unless_told_not_to(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new/registry.db"
    with pytest.raises(StoreNotFoundError, match="no store at"):
        ArtifactStore.open(url, tmp_path / "blobs", create=False)
    assert files_under(tmp_path) == []
    with ArtifactStore.open(url, tmp_path / "blobs") as store:
        assert store.list_packages() == []
    with ArtifactStore.open(url, tmp_path / "blobs", create=False) as store:
        assert store.list_packages() == []


# -- secrets -------------------------------------------------------------------------------

UNREACHABLE = "postgresql://ci@127.0.0.1:1/artifacts"


@pytest.mark.parametrize(
    "url",
    [
        f"{UNREACHABLE}?password={SECRET}",
        f"{UNREACHABLE}?sslmode=disable&PASSWORD={SECRET}",
        f"postgresql://ci:{SECRET}@127.0.0.1:1/artifacts?token={SECRET}",
        f"postgresql://ci:pw@{SECRET}@127.0.0.1:1/artifacts",
        f"postgresql://ci:{SECRET}@127.0.0.1:99999/artifacts",
        f"postgresql://ci:{SECRET}@127.0.0.1:abc/artifacts",
        # Characters that end a URL in free text, inside the password.
        f"postgresql://ci:x?{SECRET}@127.0.0.1:1/artifacts",
        f"postgresql://ci:x'{SECRET}@127.0.0.1:1/artifacts",
        f'postgresql://ci:x"{SECRET}@127.0.0.1:1/artifacts',
        f"postgresql://ci:x {SECRET}@127.0.0.1:1/artifacts",
        f"postgresql://ci:x#{SECRET}@127.0.0.1:1/artifacts",
    ],
)
@pytest.mark.parametrize(
    "args", [["ls"], ["health"], ["--json", "health"], ["migrate"], ["-v", "ls"]], ids=" ".join
)
def test_no_output_shows_a_password_from_the_database_url(
    empty_cli: Cli, url: str, args: list[str]
) -> None:
    result = empty_cli("--db", url, *args)
    assert SECRET not in result.text + result.err
    assert result.code in (1, 2), result
    assert "unexpected" not in result.err
    if result.code == 1:  # only health answers (unhealthy); everything else exits 2
        assert args[-1] == "health"


@pytest.mark.parametrize("port", ["99999", "abc", "0"])
def test_a_bad_port_is_a_config_error_exit_2(empty_cli: Cli, port: str) -> None:
    result = empty_cli("--db", f"postgresql://ci@127.0.0.1:{port}/artifacts", "ls")
    assert result.code == 2
    assert f"port '{port}' is not a number from 1 to 65535" in result.err


def test_a_driver_message_loses_every_url_and_password() -> None:
    driver = Exception(
        f"connection to postgresql://ci:{SECRET}@db/x?sslpassword={SECRET} failed: "
        f"password={SECRET} host=db\nSQL: SELECT '{SECRET}'"
    )
    error = sqlalchemy.exc.OperationalError("SELECT 1", {}, driver)
    text = reason(error)
    assert SECRET not in text
    assert text == (
        "connection to postgresql://ci:***@db/x?sslpassword=*** failed: password=*** host=db"
    )


def test_web_health_does_not_show_a_password_in_the_query(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARTIFACTSTORE_DATABASE_URL", f"{UNREACHABLE}?password={SECRET}")
    monkeypatch.setenv("ARTIFACTSTORE_STORAGE_LOCAL_ROOT", str(tmp_path))
    answer = create_app().test_client().get("/health")
    assert answer.status_code == 503
    assert SECRET.encode() not in answer.data
    assert b"password=***" in answer.data


# -- a database path under a file ----------------------------------------------------------


@pytest.fixture
def under_a_file(tmp_path: Path) -> str:
    """A SQLite URL whose folder is a regular file."""
    blocker = tmp_path / "hostname"
    blocker.write_text("not a folder")
    return f"sqlite:///{blocker}/registry.db"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["push", NAME, VERSION, "DIR"], "cannot create the folder of database"),
        (["migrate"], "cannot create the folder of database"),
        (["ls"], "no store at"),
        (["health"], "no store at"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_database_under_a_file_is_exit_2_with_a_sentence(
    empty_cli: Cli, tree: Path, under_a_file: str, args: list[str], message: str
) -> None:
    result = empty_cli("--db", under_a_file, *[str(tree) if a == "DIR" else a for a in args])
    assert result.code == 2, result
    assert message in result.err and "Errno" not in result.err
    assert result.err.count("\n") == 1


def test_the_library_raises_a_database_error_for_a_database_under_a_file(
    under_a_file: str, tmp_path: Path
) -> None:
    with pytest.raises(DatabaseError, match=r"Not a directory \(.*hostname\)"):
        ArtifactStore.open(under_a_file, tmp_path / "blobs")


def test_the_web_app_boots_and_answers_503_for_a_database_under_a_file(
    monkeypatch: pytest.MonkeyPatch, under_a_file: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARTIFACTSTORE_DATABASE_URL", under_a_file)
    monkeypatch.setenv("ARTIFACTSTORE_STORAGE_LOCAL_ROOT", str(tmp_path))
    answer = create_app().test_client().get("/health")
    assert answer.status_code == 503
    document = answer.get_json()
    assert document["failing"] == ["database"]
    assert "no store at" in document["database"]["detail"]


def test_the_web_app_never_creates_a_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Serving is not a write: a mistyped path must answer 503, not a new empty healthy store.
    monkeypatch.setenv("ARTIFACTSTORE_DATABASE_URL", f"sqlite:///{tmp_path}/typo/registry.db")
    monkeypatch.setenv("ARTIFACTSTORE_STORAGE_LOCAL_ROOT", str(tmp_path / "typo" / "blobs"))
    answer = create_app().test_client().get("/health")
    assert answer.status_code == 503
    assert "no store at" in answer.get_json()["database"]["detail"]
    assert not (tmp_path / "typo").exists()


# -- a read-only blob root -----------------------------------------------------------------


def _mount_private_read_only(root: Path) -> list[str]:
    """The argv prefix that runs a command with root bind-mounted read-only over itself, in a
    mount namespace of its own (root only); skips the test where that is impossible."""
    if shutil.which("unshare") is None:
        pytest.skip("cannot make a read-only bind mount here: no unshare")
    prefix = ["unshare", "--mount", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"']
    probe = subprocess.run(
        [*prefix, str(root), "touch", str(root / "probe")],
        capture_output=True,
        text=True,
        check=False,
    )
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.strip()}")
    return [*prefix, str(root)]


@contextmanager
def read_only(cli: Cli, root: Path) -> Iterator[Cli]:
    """The CLI with root on a read-only bind mount (a snapshot); needs root to mount it."""
    if os.geteuid() != 0:
        pytest.skip("a read-only snapshot needs a read-only mount; run as root to make one")
    prefix = _mount_private_read_only(root)

    class MountedCli(Cli):
        def __call__(self, *args: str | Path, env: dict[str, str] | None = None) -> Result:
            argv = [*prefix, sys.executable, "-m", "artifactstore", *map(str, args)]
            done = subprocess.run(
                argv, env=self.env, cwd=self.cwd, capture_output=True, timeout=60, check=False
            )
            return Result(done.returncode, done.stdout, done.stderr.decode())

    yield MountedCli(cli.env, cli.cwd)


def test_a_read_only_blob_root_can_be_verified_pulled_and_read(
    cli: Cli, tree: Path, tmp_path: Path
) -> None:
    root = Path(cli.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"])
    cli.ok("push", NAME, VERSION, tree)
    # No process has the small-blob database open, so it has no -wal and -shm files, and
    # SQLite cannot create them on a read-only root.
    assert not (root / "small-blobs.db-shm").exists()
    with read_only(cli, root) as reader:
        verified = reader("verify", "--all")
        pulled = reader("pull", NAME, VERSION, tmp_path / "out")
        cat = reader("cat", NAME, VERSION, "sub/small.txt")
    assert (verified.code, verified.err) == (0, ""), verified
    assert verified.text.endswith(": ok\n")
    assert pulled.code == 0, pulled
    assert (tmp_path / "out" / "large.bin").read_bytes() == (tree / "large.bin").read_bytes()
    assert (cat.code, cat.out) == (0, b"small file\n"), cat
